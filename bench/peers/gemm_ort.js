#!/usr/bin/env node
// ONNX Runtime's SGEMM (MLAS, through a MatMul node) at one shape, for bench/peers/gemm_peers.py.
// Prints one JSON line: the median and best GFLOP/s of N timed runs of C[MxN] = A[MxK] * B[KxN],
// B a constant initializer (ORT prepacks it, as it does a layer's weights), one thread.
//
//   node gemm_ort.js --onnx FILE --m M --n N --k K [--runs 15] [--warmup 2]
'use strict';

const { parseArgs } = require('./cli');

async function main() {
  const o = parseArgs(process.argv.slice(2), {
    '--onnx': 'string', '--m': 'int', '--n': 'int', '--k': 'int', '--runs': 'int', '--warmup': 'int',
  }, { runs: 15, warmup: 2 });
  if (!o.onnx) throw new Error('--onnx FILE is required');
  for (const key of ['m', 'n', 'k', 'runs']) if (!(o[key] > 0)) throw new Error(`--${key} must be > 0`);
  const ort = require('onnxruntime-node');
  const session = await ort.InferenceSession.create(o.onnx, {
    intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
  });
  const a = new Float32Array(o.m * o.k);
  for (let i = 0; i < a.length; ++i) a[i] = (i % 97) * 1e-3;
  const feeds = { a: new ort.Tensor('float32', a, [o.m, o.k]) };
  for (let i = 0; i < o.warmup; ++i) await session.run(feeds);
  const rates = [];
  for (let i = 0; i < o.runs; ++i) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    rates.push((2 * o.m * o.n * o.k) / s / 1e9);
  }
  rates.sort((x, y) => x - y);
  console.log(JSON.stringify({ engine: 'onnxruntime', m: o.m, n: o.n, k: o.k, runs: o.runs,
                               median_gflops: rates[Math.floor(rates.length / 2)], best_gflops: rates[rates.length - 1] }));
}

main().catch((e) => {
  console.error(`gemm_ort.js: ${e.message}`);
  process.exit(1);
});
