'use strict';
// Command-line flags of the bench/peers scripts: `spec` maps each `--name` to 'flag' (true when
// given), 'int' or 'string' (the next argument); `defaults` gives the values of the rest. Unknown
// options and missing values throw an Error naming the option.
function parseArgs(argv, spec, defaults = {}) {
  const o = { ...defaults };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    const kind = spec[a];
    if (!kind) throw new Error(`unknown option ${a}`);
    const key = a.replace(/^--/, '');
    if (kind === 'flag') {
      o[key] = true;
      continue;
    }
    if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
    const v = argv[++i];
    o[key] = kind === 'int' ? parseInt(v, 10) : v;
  }
  return o;
}

module.exports = { parseArgs };
