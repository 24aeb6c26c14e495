// Face descriptors from @vladmandic/face-api itself (the golden values of the engine's test of
// weights/faceapi-recognition.safetensors). Node, no native code: face-api's dist/face-api.node-wasm.js
// on @tensorflow/tfjs, run on TensorFlow.js's pure-JS "cpu" backend; the model read from disk (the package's model/ folder), the images
// decoded here from PNG (8-bit RGB/RGBA/grey, non-interlaced) so no canvas is needed.
//
//   cd tools/faceapi && npm install --ignore-scripts        (once)
//   node tools/faceapi/golden.mjs [--out tests/golden/faceapi/descriptors.safetensors]
//        [--bench N] [--model DIR] IMAGE.png...
//
// Writes one F32 tensor of 128 values per image, named by the file's stem; --bench N also times N
// computeFaceDescriptor calls on the first image and prints ms per face.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const pkgDir = path.join(here, 'node_modules', '@vladmandic', 'face-api');
// (the bundled dist/face-api.esm.js cannot start in node: its tfjs looks for node's util module)
const faceapi = createRequire(import.meta.url)(path.join(pkgDir, 'dist', 'face-api.node-wasm.js'));
const { tf } = faceapi;

function die(msg) {
  console.error(`golden.mjs: ${msg}`);
  process.exit(1);
}

function decodePng(file) {
  const buf = fs.readFileSync(file);
  if (buf.subarray(0, 8).toString('hex') !== '89504e470d0a1a0a') die(`${file}: not a PNG`);
  let off = 8, width = 0, height = 0, depth = 0, type = 0, interlace = 0;
  const idat = [];
  while (off < buf.length) {
    const len = buf.readUInt32BE(off), kind = buf.toString('ascii', off + 4, off + 8);
    const data = buf.subarray(off + 8, off + 8 + len);
    if (kind === 'IHDR') {
      width = data.readUInt32BE(0); height = data.readUInt32BE(4);
      depth = data[8]; type = data[9]; interlace = data[12];
    } else if (kind === 'IDAT') idat.push(data);
    else if (kind === 'IEND') break;
    off += 12 + len;
  }
  const channels = { 0: 1, 2: 3, 6: 4 }[type];
  if (depth !== 8 || !channels || interlace) die(`${file}: only 8-bit grey/RGB/RGBA non-interlaced PNGs are read`);
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * channels, px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)], src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = px.subarray(y * stride, (y + 1) * stride), up = y ? px.subarray((y - 1) * stride, y * stride) : null;
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? row[i - channels] : 0, b = up ? up[i] : 0, c = up && i >= channels ? up[i - channels] : 0;
      let v = src[i];
      if (f === 1) v += a;
      else if (f === 2) v += b;
      else if (f === 3) v += (a + b) >> 1;
      else if (f === 4) {
        const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else if (f !== 0) die(`${file}: bad PNG filter ${f}`);
      row[i] = v & 255;
    }
  }
  const rgb = new Int32Array(width * height * 3);  // what tf.node.decodePng would give: int32 HWC RGB
  for (let i = 0; i < width * height; i++)
    for (let k = 0; k < 3; k++) rgb[i * 3 + k] = px[i * channels + (channels === 1 ? 0 : k)];
  return { width, height, rgb };
}

function writeSafetensors(file, tensors, metadata) {
  const header = { __metadata__: metadata };
  let offset = 0;
  const names = Object.keys(tensors).sort();
  for (const n of names) {
    const bytes = tensors[n].length * 4;
    header[n] = { dtype: 'F32', shape: [tensors[n].length], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let text = JSON.stringify(header);
  text += ' '.repeat((8 - (Buffer.byteLength(text) % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(text)));
  const body = names.map((n) => Buffer.from(new Float32Array(tensors[n]).buffer));
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(text), ...body]));
}

const args = process.argv.slice(2);
let out = null, bench = 0, modelDir = path.join(pkgDir, 'model');
const images = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--out') out = args[++i];
  else if (args[i] === '--bench') bench = Number(args[++i]);
  else if (args[i] === '--model') modelDir = args[++i];
  else images.push(args[i]);
}
if (!images.length) die('no images given');

await tf.setBackend('cpu');
await tf.ready();
// face-api's own loader (weightsLoaderFactory, hence tfjs's decodeWeights), fed from the disk
const manifest = JSON.parse(fs.readFileSync(path.join(modelDir, 'face_recognition_model-weights_manifest.json')));
const load = tf.io.weightsLoaderFactory((paths) => Promise.all(paths.map((p) => {
  const b = fs.readFileSync(p);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
})));
faceapi.nets.faceRecognitionNet.loadFromWeightMap(await load(manifest, modelDir + '/'));

const descriptors = {};
for (const file of images) {
  const { width, height, rgb } = decodePng(file);
  const t = tf.tensor3d(rgb, [height, width, 3], 'int32');
  const d = await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(t);
  t.dispose();
  descriptors[path.basename(file, '.png')] = Array.from(d);
  const norm = Math.sqrt(d.reduce((s, v) => s + v * v, 0));
  console.log(`${file}: ${width}x${height}, |descriptor| = ${norm.toFixed(6)}, first ${Array.from(d.slice(0, 3)).map((v) => v.toFixed(6)).join(' ')}`);
}
if (out) {
  writeSafetensors(out, descriptors, {
    source: `@vladmandic/face-api ${JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'))).version}, `
      + `faceRecognitionNet.computeFaceDescriptor, TensorFlow.js ${tf.version_core} backend ${tf.getBackend()}, node ${process.version}`,
    made_by: 'tools/faceapi/golden.mjs',
    images: Object.keys(descriptors).sort().join(','),
  });
  console.log(`${out}: ${Object.keys(descriptors).length} descriptors`);
}
if (bench > 0) {
  const { width, height, rgb } = decodePng(images[0]);
  const t = tf.tensor3d(rgb, [height, width, 3], 'int32');
  for (let i = 0; i < 3; i++) await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(t);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < bench; i++) await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(t);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6 / bench;
  console.log(`face-api ${tf.getBackend()} backend: ${ms.toFixed(2)} ms per face (${bench} runs, ${images[0]})`);
  t.dispose();
}
