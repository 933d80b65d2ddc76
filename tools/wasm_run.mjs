// Run dual-mode test modules on the 32-bit MicroPython WebAssembly port under Node.
//
//   node tools/wasm_run.mjs [--heap 64k] [--pystack 16384] [--dir SRC:DEST ...] test_lib_rlp ...
//   node tools/wasm_run.mjs [--heap 64k] --code 'import keccak; print(keccak.backend())'
//
// The port (npm @micropython/micropython-webassembly-pyscript) has 32-bit small ints,
// no viper and no native emitter, so it proves that lib/ holds where ints above 2**30
// are heap objects. lib/ and tests/ are copied into the port's in-memory filesystem
// (/lib, /tests) and put on sys.path; tests/mprun.py runs the modules and prints one
// line per test and "N passed, N failed". Exit status: 0 if all passed, 1 if a test
// failed, 2 if the runner itself failed (bad arguments, uncaught Python exception).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const PORT = path.join(ROOT, "node_modules", "@micropython", "micropython-webassembly-pyscript",
  "micropython.mjs");

function usage(msg) {
  process.stderr.write("wasm_run: " + msg + "\n");
  process.stderr.write("usage: node tools/wasm_run.mjs [--heap 64k] [--pystack N] " +
    "[--dir SRC:DEST] (--code CODE | module ...)\n");
  process.exit(2);
}

function parseSize(s) {
  const m = /^(\d+)([kKmM]?)$/.exec(s);
  if (!m) usage("bad size " + JSON.stringify(s) + " (use e.g. 64k or 1m)");
  const mult = { "": 1, k: 1024, K: 1024, m: 1048576, M: 1048576 }[m[2]];
  return parseInt(m[1], 10) * mult;
}

function parseArgs(argv) {
  const opts = {
    heap: 64 * 1024, pystack: 16384, code: null, modules: [],
    dirs: [[path.join(ROOT, "lib"), "/lib"], [path.join(ROOT, "tests"), "/tests"]],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) usage(a + " needs a value");
      return argv[++i];
    };
    if (a === "--heap") opts.heap = parseSize(next());
    else if (a === "--pystack") opts.pystack = parseSize(next());
    else if (a === "--code") opts.code = next();
    else if (a === "--dir") {
      const v = next();
      const k = v.lastIndexOf(":");
      if (k <= 0) usage("--dir wants SRC:DEST, got " + JSON.stringify(v));
      opts.dirs.push([path.resolve(v.slice(0, k)), v.slice(k + 1)]);
    } else if (a.startsWith("-")) usage("unknown option " + a);
    else opts.modules.push(a.replace(/\.py$/, "").replace(/^.*\//, ""));
  }
  if (!opts.code && opts.modules.length === 0) usage("nothing to run");
  return opts;
}

// Copy a host directory tree into the emscripten filesystem (sources and data files).
function copyTree(FS, src, dest) {
  try {
    FS.mkdir(dest);
  } catch (e) {
    // exists already
  }
  for (const ent of fs.readdirSync(src, { withFileTypes: true })) {
    if (ent.name === "__pycache__" || ent.name.startsWith(".")) continue;
    const s = path.join(src, ent.name);
    const d = dest + "/" + ent.name;
    if (ent.isDirectory()) copyTree(FS, s, d);
    else if (ent.isFile() && !ent.name.endsWith(".pyc")) FS.writeFile(d, fs.readFileSync(s));
  }
}

function pyStr(s) {
  return JSON.stringify(s); // a JSON string literal is a valid Python str literal here
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const { loadMicroPython } = await import(pathToFileURL(PORT).href);
  const mp = await loadMicroPython({
    heapsize: opts.heap,
    pystack: opts.pystack,
    linebuffer: true,
    stdout: (line) => process.stdout.write(line + "\n"),
    stderr: (line) => process.stderr.write(line + "\n"),
  });
  for (const [src, dest] of opts.dirs) copyTree(mp.FS, src, dest);
  const pathList = opts.dirs.map(([, d]) => pyStr(d)).join(", ");
  let code = "import sys\nsys.path[:0] = [" + pathList + "]\n";
  if (opts.code !== null) {
    code += opts.code + "\n_wasm_failed = 0\n";
  } else {
    code += "import mprun\n_wasm_failed = mprun.main([" +
      opts.modules.map(pyStr).join(", ") + "])\n";
  }
  try {
    mp.runPython(code);
  } catch (e) {
    if (e && e.name === "PythonError") {
      if (e.type === "SystemExit") process.exit(1);
      process.stderr.write("MicroPython (wasm) raised " + e.type + ":\n" + e.message + "\n");
      process.exit(2);
    }
    throw e;
  }
  process.exit(mp.globals.get("_wasm_failed") ? 1 : 0);
}

main().catch((e) => {
  process.stderr.write("wasm_run: " + (e && e.stack ? e.stack : e) + "\n");
  process.exit(2);
});
