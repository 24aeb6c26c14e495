#!/usr/bin/env node
// Per-layer times of a torchvision ResNet/VGG in ONNX Runtime, next to `cnn-infer --profile`'s: runs
// the ONNX export (bench/compare_peers.sh writes them to build/peers/) with ORT's own profiler and
// prints one line per node, `torchvision-layer-name  median-ms`, slowest first. ORT fuses each
// convolution with its BatchNorm, ReLU and residual Add and names the node after its output, which
// is mapped back to the convolution's torchvision name (see layerName).
//
//   node bench/peers/ort_profile.js --onnx build/peers/resnet50.onnx [--threads 2] [--runs 20]
//
// The profiler adds its own overhead to every node: compare layers with each other, and whole
// models with bench/compare_peers.sh.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');

const { parseArgs } = require('./cli');

// ORT's node name (its output, e.g. /layer1/layer1.0/relu_1/Relu_output_0_nchwc) -> torchvision's. A
// convolution with a fused activation is named after the activation: relu after conv1, relu_1 after
// conv2, relu_2 after conv3 (a block reuses one ReLU module). Other ops keep ORT's name.
function layerName(node, op) {
  const n = node.replace(/_nchwc$/, '');
  const isConv = /Conv/.test(op);
  if (n.startsWith('/relu/') && isConv) return 'conv1';
  for (const m of ['maxpool', 'avgpool', 'fc']) if (n.startsWith(`/${m}`)) return m;
  const m = n.match(/^\/layer\d\/(layer\d\.\d+)\/([^/]+)/);
  if (!m || !isConv) return n;
  const [, block, module] = m;
  if (/^conv\d$/.test(module)) return `${block}.${module}`;
  if (module === 'downsample') return `${block}.downsample.0`;
  const relu = module.match(/^relu(?:_(\d))?$/);
  return relu ? `${block}.conv${relu[1] ? Number(relu[1]) + 1 : 1}` : n;
}

async function main() {
  const o = parseArgs(process.argv.slice(2), { '--onnx': 'string', '--threads': 'int', '--runs': 'int' },
                      { threads: 2, runs: 20 });
  if (!o.onnx) throw new Error('--onnx FILE is required');
  if (!(o.threads > 0) || !(o.runs > 2)) throw new Error('--threads must be > 0 and --runs > 2');
  if (!fs.existsSync(o.onnx)) throw new Error(`${o.onnx}: no such file (bench/compare_peers.sh exports it)`);
  const ort = require('onnxruntime-node');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ort-profile-'));
  try {
    const session = await ort.InferenceSession.create(o.onnx, {
      intraOpNumThreads: o.threads, interOpNumThreads: 1, executionMode: 'sequential',
      graphOptimizationLevel: 'all', executionProviders: ['cpu'], enableProfiling: true,
      profileFilePrefix: path.join(dir, 'profile'),
    });
    const size = 224;
    const x = new ort.Tensor('float32', new Float32Array(3 * size * size).fill(0.1), [1, 3, size, size]);
    for (let i = 0; i < o.runs; ++i) await session.run({ [session.inputNames[0]]: x });
    session.endProfiling();
    const file = fs.readdirSync(dir).find((f) => f.endsWith('.json'));
    if (!file) throw new Error('ONNX Runtime wrote no profile');
    const times = new Map();
    for (const e of JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'))) {
      if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
      const name = layerName(e.name.slice(0, -'_kernel_time'.length), (e.args && e.args.op_name) || '');
      if (!times.has(name)) times.set(name, []);
      times.get(name).push(e.dur / 1000);
    }
    const rows = [...times].map(([name, t]) => {
      const s = t.slice(2).sort((a, b) => a - b);  // the first runs warm up
      return [name, s[Math.floor(s.length / 2)]];
    });
    rows.sort((a, b) => b[1] - a[1]);
    let total = 0;
    for (const [name, ms] of rows) {
      console.log(`${name.padEnd(28)} ${ms.toFixed(3)} ms`);
      total += ms;
    }
    console.log(`total ${total.toFixed(3)} ms (sum of node medians, ${o.threads} thread(s))`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`ort_profile: ${e.message}`);
  process.exit(1);
});
