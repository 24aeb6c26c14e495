#!/usr/bin/env node
// ONNX Runtime (npm onnxruntime-node, native CPU execution provider) benchmark for
// bench/compare_peers.sh. Prints exactly one JSON line on stdout, like `cnn-infer --bench N`.
//
//   node bench_ort.js --check
//       exit 0 and print the version if the native binding loads, else exit 1 with the reason.
//   node bench_ort.js --onnx FILE --arch ARCH --threads T --runs N [--warmup W] [--size 224] [--spin 0|1]
//
// Session: intraOpNumThreads=T (ORT counts the calling thread, so T=2 means one extra worker),
// interOpNumThreads=1, sequential execution, graphOptimizationLevel 'all', CPU provider only.
// --spin sets the session option session.intra_op.allow_spinning (ORT's default is 1: idle workers
// spin, which is fastest on a quiet machine but costs a lot when other processes want the cores).
'use strict';

const { parseArgs } = require('./cli');

function version(ort) {
  return (ort.env && ort.env.versions && (ort.env.versions.node || ort.env.versions.common)) || '?';
}

async function main() {
  const o = parseArgs(process.argv.slice(2), {
    '--check': 'flag', '--onnx': 'string', '--arch': 'string', '--threads': 'int', '--runs': 'int',
    '--warmup': 'int', '--size': 'int', '--spin': 'string',
  }, { warmup: 2, size: 224 });
  let ort;
  try {
    ort = require('onnxruntime-node');
    // require() loads the native binding (bin/napi-v6/linux/x64/onnxruntime_binding.node and
    // libonnxruntime.so.1); check that it offers the CPU execution provider.
    if (o.check) {
      const backends = ort.listSupportedBackends ? ort.listSupportedBackends() : [];
      if (backends.length && !backends.some((b) => b.name === 'cpu'))
        throw new Error(`no cpu backend in ${JSON.stringify(backends)}`);
    }
  } catch (e) {
    console.error(`cannot load onnxruntime-node: ${e.message}`);
    process.exit(1);
  }
  if (o.check) {
    const names = (ort.listSupportedBackends ? ort.listSupportedBackends() : []).map((b) => b.name);
    console.log(`onnxruntime-node ${version(ort)} (backends: ${names.join(', ') || '?'})`);
    return;
  }
  if (!o.onnx || !o.arch || !(o.threads >= 1) || !(o.runs >= 1) || !(o.warmup >= 0))
    throw new Error('usage: bench_ort.js --onnx FILE --arch ARCH --threads T --runs N [--warmup W]');

  if (o.spin !== undefined && o.spin !== '0' && o.spin !== '1') throw new Error('--spin expects 0 or 1');
  const options = {
    executionProviders: ['cpu'],
    intraOpNumThreads: o.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
  if (o.spin !== undefined) options.extra = { session: { intra_op: { allow_spinning: o.spin } } };
  const session = await ort.InferenceSession.create(o.onnx, options);
  const n = 3 * o.size * o.size;
  const data = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; ++i) { // deterministic pseudo-random input in [-1, 1)
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    data[i] = s / 2147483648 - 1;
  }
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, [1, 3, o.size, o.size]) };

  const first = await session.run(feeds);
  const outSize = first[session.outputNames[0]].size;
  if (outSize !== 1000) console.error(`warning: ONNX Runtime output has ${outSize} values, expected 1000`);
  for (let i = 1; i < o.warmup; ++i) await session.run(feeds);
  const ms = [];
  for (let i = 0; i < o.runs; ++i) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const sorted = ms.slice().sort((a, b) => a - b);
  const k = sorted.length;
  const median = k % 2 ? sorted[(k - 1) / 2] : 0.5 * (sorted[k / 2 - 1] + sorted[k / 2]);
  console.log(JSON.stringify({
    engine: 'onnxruntime',
    arch: o.arch,
    threads: o.threads,
    runs: k,
    median_ms: Math.round(median * 1000) / 1000,
    min_ms: Math.round(sorted[0] * 1000) / 1000,
    version: version(ort),
    allow_spinning: o.spin === undefined ? 'default' : o.spin,
  }));
}

main().catch((e) => {
  console.error(`bench_ort.js: ${e && e.message ? e.message : e}`);
  process.exit(1);
});
