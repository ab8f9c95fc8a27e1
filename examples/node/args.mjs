// The examples' command-line options: `--name value` pairs (names from `defaults`) and
// positionals. A "-1" is a positional: a seed of -1 must reach the seed check, not be taken for
// an option. (The package's own `edgegen-runtime` command has its copy: it ships alone.)
export function parseArgs(argv, defaults) {
  const values = { ...defaults };
  const positionals = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) { positionals.push(a); continue; }
    const name = a.slice(2);
    if (!Object.hasOwn(defaults, name)) throw new Error(`unknown option ${a}`);
    if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
    values[name] = argv[++i];
  }
  return { values, positionals };
}
