const ort = require('onnxruntime-node');
(async () => {
  const [onnx, thr, runs] = [process.argv[2], parseInt(process.argv[3]), parseInt(process.argv[4] || '10')];
  const s = await ort.InferenceSession.create(onnx, { intraOpNumThreads: thr, interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: 'all', executionProviders: ['cpu'], enableProfiling: true, profileFilePrefix: '/tmp/gx/ortprof' });
  const x = new ort.Tensor('float32', new Float32Array(3 * 224 * 224).fill(0.1), [1, 3, 224, 224]);
  const feeds = {}; feeds[s.inputNames[0]] = x;
  for (let i = 0; i < runs; ++i) await s.run(feeds);
  s.endProfiling();
})();
