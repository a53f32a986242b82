// Builds dist/: the loader (tandem.js), its wasm (tandem_bg.wasm), the ES module (tandem.mjs) and
// the type declarations (tandem.d.ts).
//
//   node scripts/build.mjs                 -> dist/
//   node scripts/build.mjs --test-hooks    -> dist-test/ (adds test-only commands: a deliberate panic, a reset)
//   node scripts/build.mjs --out DIR       -> DIR instead (the e2e server serves it with TANDEM_DIST_DIR=DIR)
//   node scripts/build.mjs --names         -> keeps the wasm's function names (for profiling; bigger)
//   node scripts/build.mjs --order-seed N  -> orders the wasm's functions with another seed (see
//                                             scripts/order-functions.mjs: for size reviews)
//   node scripts/build.mjs --platforms meta,google
//                                          -> only these destination platforms (cargo features; all by
//                                             default); a config naming another gets a `not_built` error
//   node scripts/build.mjs --js-only       -> in seconds, for changes to www/loader.js and this file's
//                                             glue and minifying steps: reuses the wasm and the
//                                             wasm-bindgen output (glue, inline_js snippets) of the
//                                             last full build with the same flags; the same files as
//                                             a full build would write
//
// Steps: cargo (wasm32, release) -> wasm-bindgen --target web -> wasm-opt -Oz -> the functions
// reordered for gzip (scripts/order-functions.mjs) -> wasm-opt's strip and renaming -> the glue is
// wrapped in a factory (so a crashed instance can be replaced), its inline_js snippets inlined, and
// combined with www/loader.js into a classic script and an ES module, minified by terser.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { minify as terser } from 'terser';
import { orderFunctions } from './order-functions.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const testHooks = process.argv.includes('--test-hooks');
const keepNames = process.argv.includes('--names');
const jsOnly = process.argv.includes('--js-only');
const orderSeedFlag = process.argv.indexOf('--order-seed');
const orderSeed = orderSeedFlag > 0 ? Number(process.argv[orderSeedFlag + 1]) : 12345;
if (!Number.isInteger(orderSeed)) {
  console.error(`build: --order-seed takes an integer; got ${process.argv[orderSeedFlag + 1]}`);
  process.exit(2);
}
const outFlag = process.argv.indexOf('--out');
const outName = outFlag > 0 ? process.argv[outFlag + 1] : (testHooks ? 'dist-test' : 'dist');
const outDir = join(root, outName);
const bindgenDir = join(root, 'target', 'bindgen-' + outName.replace(/[^A-Za-z0-9_-]/g, '_'));
// The wasm as ordered for gzip (below). --js-only starts from the one the last full build into the
// same output left here: checked before anything is removed, so a missing build leaves dist/ as it was.
const ordered = join(bindgenDir, 'tandem_ordered.wasm');
if (jsOnly && !statSync(ordered, { throwIfNoEntry: false })) {
  console.error(`build: --js-only needs a full build into ${outName} first`);
  process.exit(2);
}
const platformsFlag = process.argv.indexOf('--platforms');
const platforms = platformsFlag > 0 ? process.argv[platformsFlag + 1].split(',').map((p) => p.trim()).filter(Boolean) : null;
// The platforms are Cargo.toml's default features (one per src/platforms/<name>.rs).
const defaultFeatures = /^default\s*=\s*\[([^\]]*)\]/m.exec(readFileSync(join(root, 'Cargo.toml'), 'utf8'));
const known = defaultFeatures ? [...defaultFeatures[1].matchAll(/"([^"]+)"/g)].map((m) => m[1]) : [];
if (platforms && (platforms.length === 0 || platforms.some((p) => !known.includes(p)))) {
  console.error(`build: --platforms takes a comma-separated list of ${known.join(', ')}; got ${process.argv[platformsFlag + 1]}`);
  process.exit(2);
}
const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;

function run(command, args) {
  execFileSync(command, args, { cwd: root, stdio: 'inherit' });
}

// std is rebuilt with panics as an immediate trap (`-Cpanic=immediate-abort`): without it every
// bounds check links Rust's panic-message formatting, about 8 KB of gzip for nothing a visitor can
// use. A trap is what a panic already was under panic = "abort"; the loader recovers from it.
// `-Zlocation-detail=none` drops the source paths and line numbers that std's panicking calls still
// carry into rodata (about 360 B of gzip), useless with panics as a trap.
// These flags are unstable, hence RUSTC_BOOTSTRAP; they need the rust-src component (setup.sh).
// Without reference types (on by default since Rust 1.82) wasm-bindgen emits no externref table and
// its set-up code: no JS value ever enters the wasm (src/shell), so they would be dead weight.
// LLVM's inliner keeps opt-level z's own budget: with the MIR inliner below, pinning it to 0
// (`-inline-threshold=0`, once 400 B smaller) now costs 44 B of gzip and 1.7 % of track() time
// (same-page A/B, 5 pages). Small functions are inlined early by rustc's MIR inliner (off by
// default at opt-level z), with one threshold for all: about 300 B of gzip; 20 and 40 now do
// 170-245 B worse than 30, its defaults (50, 100 with #[inline]) add 2 KB.
// The wasm memory declares a maximum (size-budget.json's memory_max_bytes, 16 MiB): a tag must not
// grow without bound in someone else's page (without a maximum, tests/e2e's memory test reaches
// 4 GB), and iOS Safari has failed with "Out of memory" on modules whose memory may grow large.
// 10,000 Purchases take the memory from 1.2 to 1.6 MB; an allocation past the maximum fails,
// which traps, and the loader goes on with a fresh instance.
const memoryMax = JSON.parse(readFileSync(join(root, 'size-budget.json'), 'utf8')).memory_max_bytes;
// A target dir per feature set, so switching builds does not recompile std each time.
const targetDir = join(root, 'target', (testHooks ? 'wasm-test-hooks' : 'wasm') + (platforms ? '-' + platforms.join('-') : ''));
const cargoArgs = [
  'build', '--release', '--lib', '-p', 'tandem', '--target', 'wasm32-unknown-unknown',
  '--target-dir', targetDir, '-Zbuild-std=std,panic_abort',
  // std's smaller variants of its algorithms (sorting, string search): about 300 B of gzip.
  '-Zbuild-std-features=optimize_for_size',
];
// lazy-messages: the wasm holds a token for each piece of message text, the text is in the
// messages file written below.
const features = ['lazy-messages', ...(testHooks ? ['test-hooks'] : []), ...(platforms || [])];
if (platforms) cargoArgs.push('--no-default-features');
if (features.length) cargoArgs.push('--features', features.join(','));
if (!jsOnly) execFileSync('cargo', cargoArgs, {
  cwd: root,
  stdio: 'inherit',
  env: {
    ...process.env,
    RUSTC_BOOTSTRAP: '1',
    CARGO_ENCODED_RUSTFLAGS: ['-Zunstable-options', '-Cpanic=immediate-abort', '-Ctarget-feature=-reference-types', '-Zlocation-detail=none',
      `-Clink-arg=--max-memory=${memoryMax}`,
      '-Zinline-mir=yes', '-Zinline-mir-threshold=30', '-Zinline-mir-hint-threshold=30'].join('\x1f'),
  },
});
const rawWasm = join(targetDir, 'wasm32-unknown-unknown', 'release', 'tandem.wasm');

if (!jsOnly) rmSync(bindgenDir, { recursive: true, force: true });
if (!jsOnly) run('wasm-bindgen', ['--target', 'web', '--no-typescript', '--out-dir', bindgenDir, '--out-name', 'tandem', rawWasm]);

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
// Import and export names are shortened to a letter or two: wasm-bindgen's carry a 16-digit hash
// each and the snippets' module paths, about 1 KB of gzip between the wasm and the glue. wasm-opt
// prints what it renamed ({ imports: [[module, name, short]], exports: [[name, short]] });
// glueFactory renames the glue to match, and every import must end in one module.
const outWasm = join(outDir, 'tandem_bg.wasm');
const wasmOpt = join(root, 'node_modules', 'binaryen', 'bin', 'wasm-opt');
const optimized = join(bindgenDir, 'tandem_opt.wasm');
// --converge repeats -Oz until it stops shrinking (about 600 B of gzip). --low-memory-unused lets
// wasm-opt fold constant offsets into loads and stores (about 500 B): sound because rustc's layout
// puts the stack's 1 MB below the data, so the first 1 KB is only reached by a stack 1 MB deep,
// and the core bounds its recursion (json::MAX_DEPTH). The renaming runs once, on its own: under
// --converge it would run again on the short names and print its table more than once.
// A function with one caller is inlined into it only when small (wasm-opt inlines it whatever its
// size by default): the core inlined whole into `command` made one function of 26 KB whose
// pieces, renumbered into its locals and nested in its blocks, no longer repeat one another; as
// separate functions they compress about 1.3 KB smaller with gzip (0.9 KB with brotli), for
// 2.3 KB more raw bytes.
// Limits from 12 to 23 B do about as well; the calls this keeps cost nanoseconds.
// Functions of up to 4 B are inlined everywhere (wasm-opt's default is 2): 33 B of gzip smaller
// (177 B more raw); 3 makes no difference, 5 and 6 are 33 and 250 B of gzip worse.
// --flatten --rereloop -Oz -Oz after the first -Oz rebuilds each function's control flow from its
// basic blocks, which -Oz then shrinks further: about 300 B of gzip, no change in track() time
// (same-page A/B 1.000 over 5 pages); the second -Oz finds about 65 B more, a third nothing. No other binaryen pass tried helped (--gufa, --dfo,
// --reorder-functions, which cost 800 B of gzip, -O4, --merge-similar-functions, ...).
// The target_features custom section (rustc's record of the wasm features it used) is read by
// linkers only; browsers ignore it (about 100 B of gzip).
if (!jsOnly) run(wasmOpt, [...(keepNames ? ['-g'] : []), '-Oz', '--converge', '--low-memory-unused', '--one-caller-inline-max-function-size=20', '--always-inline-max-function-size=4', '--flatten', '--rereloop', '-Oz', '-Oz', join(bindgenDir, 'tandem_bg.wasm'), '-o', optimized]);
// The order of the functions decides what gzip's window holds when each is compressed: ordered for
// that, the wasm is about 760 B of gzip smaller, for 20 to 35 s of build time.
if (!jsOnly) orderFunctions(optimized, ordered, keepNames, orderSeed);
const minified = JSON.parse(execFileSync(wasmOpt, [
  ...(keepNames ? ['-g'] : ['--strip-debug']), '--strip-producers', '--strip-target-features', '--minify-imports-and-exports-and-modules', ordered, '-o', outWasm,
], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }));
// The build's id, in a custom section `t` of the wasm and in the loader (TANDEM_WASM): the loader
// takes a module the snippet compiled (tandem.compiled) only when the ids match, so a compile line
// left pointing at another release's wasm costs a second download, never a module whose exports
// and imports mean something else to this glue. Six hex digits of the wasm's hash: two releases
// share an id once in 16 million.
const wasmId = createHash('sha256').update(readFileSync(outWasm)).digest('hex').slice(0, 6);
writeFileSync(outWasm, Buffer.concat([readFileSync(outWasm), Buffer.from([0, 2 + wasmId.length, 1, 't'.charCodeAt(0)]), Buffer.from(wasmId)]));
const importModules = new Set(WebAssembly.Module.imports(new WebAssembly.Module(readFileSync(outWasm))).map((i) => i.module));
if (importModules.size > 1) throw new Error('the minified wasm imports from more than one module');
const importModule = [...importModules][0] || 'a';

function listFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? listFiles(path) : [path];
  });
}

// wasm-bindgen's ES-module glue, turned into a factory function body: snippets inlined, exports
// made local, and its loading paths (with the default wasm URL, import.meta.url, invalid in a
// classic script) replaced by instantiating the compiled module the loader always passes.
function glueFactory() {
  let glue = readFileSync(join(bindgenDir, 'tandem.js'), 'utf8');
  const snippetsDir = join(bindgenDir, 'snippets');
  let snippets = '';
  try {
    for (const file of listFiles(snippetsDir)) {
      snippets += readFileSync(file, 'utf8').replace(/^export\s+function/gm, 'function') + '\n';
    }
  } catch (error) {
    if (error.code !== 'ENOENT') throw error;
  }
  glue = glue.replace(/^import \{[^}]*\} from '\.\/snippets\/[^']*';\n/gm, '');
  // A snippet function the wasm imports directly (no JS shim, e.g. one taking only numbers) comes
  // as a namespace import: its (now local) functions join the import object below under their
  // minified import names. wasm-bindgen may import one snippet under two names: its functions
  // join once.
  const namespaces = new Map();
  glue = glue.replace(/^import \* as (\w+) from ["'](\.\/snippets\/[^"']*)["'];?\n/gm, (line, name, module) => {
    namespaces.set(name, module);
    return '';
  });
  const snippetImports = minified.imports.filter(([m]) => new Set(namespaces.values()).has(m)).map(([, old, short]) => `${short}: ${old}`);
  for (const [module, old, short] of minified.imports) {
    if (module.startsWith('./snippets/')) continue;
    const key = new RegExp(`\\b${old}\\b`, 'g');
    if (!key.test(glue)) throw new Error(`import ${old} not found in the wasm-bindgen glue`);
    glue = glue.replace(key, short);
  }
  // Strings returned to the wasm have their pointer and length written through a DataView whose
  // freshness check reads `buffer.detached` on every call: a slow getter, paid twice per string on
  // track()'s path. An Int32Array, renewed when memory growth empties it (as the Uint8Array view
  // already is), writes the same two words; the return slots are 4-byte aligned and wasm is
  // little-endian, like every platform a browser runs on.
  const dataViewWrite = /getDataViewMemory0\(\)\.setInt32\(\(arg0 >>> 0\) \+ 4 \* (\d), (\w+), true\);/g;
  if (!dataViewWrite.test(glue)) throw new Error('no getDataViewMemory0().setInt32 in the wasm-bindgen glue');
  glue = glue.replace(dataViewWrite, (write, slot, value) => `getInt32Memory0()[(arg0 >>> 2) + ${slot}] = ${value};`);
  // Each import returning a string to the wasm wrote its pointer and length in five lines of its
  // own; they become one call of returnString, which passes the string (an Option's None as a null
  // pointer, where a plain String still fails on anything but a string), in the same order (the
  // pointer first, which sets WASM_VECTOR_LEN, then the length read from it).
  const stringReturn = /(?:const|var) ptr1 = (isLikeNone\(ret\) \? 0 : )?passStringToWasm0\(ret, ([^;]*)\);\n\s*(?:const|var) len1 = WASM_VECTOR_LEN;\n\s*getInt32Memory0\(\)\[\(arg0 >>> 2\) \+ 1\] = len1;\n\s*getInt32Memory0\(\)\[\(arg0 >>> 2\) \+ 0\] = ptr1;/g;
  if (!stringReturn.test(glue)) throw new Error('no string returned to the wasm in the expected form in the wasm-bindgen glue');
  const returnAllocators = new Set();
  glue = glue.replace(stringReturn, (lines, optional, allocators) => {
    returnAllocators.add(allocators);
    return `returnString(arg0, ret${optional ? ', 1' : ''});`;
  });
  if (/getInt32Memory0\(\)\[/.test(glue)) throw new Error('a string returned to the wasm in another form in the wasm-bindgen glue');
  if (returnAllocators.size !== 1) throw new Error('strings returned to the wasm with more than one malloc and realloc in the wasm-bindgen glue');
  // isLikeNone's test, and the view's renewal, its one user, written in place (terser would inline
  // each as a function expression called in place). The view is renewed after the string is
  // passed, which may grow the memory.
  glue += `function returnString(slot, text, optional) {
    const pointer = optional && text == null ? 0 : passStringToWasm0(text, ${[...returnAllocators][0]});
    if (cachedInt32Memory0 === null || cachedInt32Memory0.byteLength === 0) cachedInt32Memory0 = new Int32Array(wasm.memory.buffer);
    cachedInt32Memory0[(slot >>> 2) + 1] = WASM_VECTOR_LEN;
    cachedInt32Memory0[slot >>> 2] = pointer;
}
`;
  const dataView = /^let cachedDataViewMemory0 = null;\nfunction getDataViewMemory0\(\) \{\n.*?^}\n/ms;
  if (!dataView.test(glue)) throw new Error('getDataViewMemory0 not found in the wasm-bindgen glue');
  glue = glue.replace(dataView, 'let cachedInt32Memory0 = null;\n');
  glue = glue.replace(/\bcachedDataViewMemory0 = null;/g, 'cachedInt32Memory0 = null;');
  if (/DataViewMemory0/.test(glue)) throw new Error('the DataView memory view is still used in the wasm-bindgen glue');
  // command's wrapper, as wasm-bindgen writes it, frees in a finally what a trap in the call never
  // returned (a free of size 0, which returns at once), and guards frees in its catch for a second
  // string that cannot have been passed when it is reached. What is left: the first string freed
  // when passing the second fails, the reply freed once read.
  const commandWrapper = /^export function command\(name, args_json\) \{\n {4}let deferred3_0;\n {4}let deferred3_1;\n {4}try \{\n {8}let ptr0, len0, ptr1, len1;\n {8}try \{\n {12}ptr0 = passStringToWasm0\(name(, [^)]*)\);\n {12}len0 = WASM_VECTOR_LEN;\n {12}ptr1 = passStringToWasm0\(args_json\1\);\n {12}len1 = WASM_VECTOR_LEN;\n {8}\} catch \(e\) \{\n {12}if \(ptr1\) \{ wasm\.__wbindgen_free\(ptr1, len1 \* 1, 1\); \}\n {12}if \(ptr0\) \{ wasm\.__wbindgen_free\(ptr0, len0 \* 1, 1\); \}\n {12}throw e;\n {8}\}\n {8}const ret = wasm\.command\(ptr0, len0, ptr1, len1\);\n {8}deferred3_0 = ret\[0\];\n {8}deferred3_1 = ret\[1\];\n {8}return getStringFromWasm0\(ret\[0\], ret\[1\]\);\n {4}\} finally \{\n {8}wasm\.__wbindgen_free\(deferred3_0, deferred3_1, 1\);\n {4}\}\n\}\n/m;
  if (!commandWrapper.test(glue)) throw new Error('command not found in the expected form in the wasm-bindgen glue');
  glue = glue.replace(commandWrapper, (wrapper, allocators) => `export function command(name, args_json) {
    const ptr0 = passStringToWasm0(name${allocators});
    const len0 = WASM_VECTOR_LEN;
    let ptr1;
    try {
        ptr1 = passStringToWasm0(args_json${allocators});
    } catch (e) {
        wasm.__wbindgen_free(ptr0, len0, 1);
        throw e;
    }
    const ret = wasm.command(ptr0, len0, ptr1, WASM_VECTOR_LEN);
    try {
        return getStringFromWasm0(ret[0], ret[1]);
    } finally {
        wasm.__wbindgen_free(ret[0], ret[1], 1);
    }
}
`);
  // An export taking one string passes it in the call itself: its arguments are read in order, the
  // pointer (which sets WASM_VECTOR_LEN) before the length.
  const oneString = /^( {4})const ptr0 = (passStringToWasm0\(\w+, [^)]*\));\n {4}const len0 = WASM_VECTOR_LEN;\n {4}(wasm\.\w+)\(ptr0, len0\);\n/gm;
  if (!oneString.test(glue)) throw new Error('no export taking one string in the expected form in the wasm-bindgen glue');
  glue = glue.replace(oneString, '$1$3($2, WASM_VECTOR_LEN);\n');
  const exportNames = new Map(minified.exports);
  glue = glue.replace(/\bwasm\.(\w+)/g, (use, name) => {
    if (!exportNames.has(name)) throw new Error(`the glue uses wasm.${name}, which the wasm does not export`);
    return `wasm.${exportNames.get(name)}`;
  });
  // One import object, the glue's own with the snippets' functions in it, as every import is in one
  // module. Its null prototype goes: WebAssembly reads the imports by name, all own properties.
  let ownImports = null;
  glue = glue.replace(/return \{\n\s*__proto__: null,\n((?:\s*"[^"]+": \w+,\n)+)\s*\};/, (block, members) => {
    const objects = [...members.matchAll(/: (\w+),/g)].map((m) => m[1]).filter((name) => !namespaces.has(name));
    if (objects.length !== 1) throw new Error('the wasm-bindgen glue has more than one import object of its own');
    [ownImports] = objects;
    return `return { ${JSON.stringify(importModule)}: ${ownImports} };`;
  });
  const nullProto = new RegExp(`^( {4}const ${ownImports} = \\{\\n) {8}__proto__: null,\\n`, 'm');
  if (!ownImports || !nullProto.test(glue)) throw new Error('the import object with __proto__: null not found in the wasm-bindgen glue');
  glue = glue.replace(nullProto, (head) => `${head.split('\n')[0]}\n${snippetImports.map((entry) => `        ${entry},\n`).join('')}`);
  if (glue.includes('__proto__')) throw new Error('__proto__ left in the wasm-bindgen glue');
  // ...returned as written rather than named first.
  const namedImports = new RegExp(`^ {4}const ${ownImports} = \\{\\n(.*?)^ {4}\\};\\n {4}return \\{ ("[^"]+"): ${ownImports} \\};\\n`, 'ms');
  if (!namedImports.test(glue)) throw new Error('the import object is not returned as expected in the wasm-bindgen glue');
  glue = glue.replace(namedImports, (object, members, module) => `    return { ${module}: {\n${members}    } };\n`);
  for (const name of namespaces.keys()) {
    if (new RegExp(`\\b${name}\\b`).test(glue)) throw new Error(`${name}, a snippet's namespace, is still used in the wasm-bindgen glue`);
  }
  if (glue.includes('./tandem_bg.js')) throw new Error('the import object of the wasm-bindgen glue was not rewritten');
  if (/^import /m.test(glue)) throw new Error('unexpected import left in the wasm-bindgen glue');
  // The loader always hands init a compiled WebAssembly.Module (`init(compiled)`):
  // wasm-bindgen's fetching, streaming, MIME fallback and sync paths (and their console messages)
  // would be downloaded by every visitor for nothing. They are replaced by the one path used.
  for (const name of ['__wbg_load', 'initSync', '__wbg_init', '__wbg_init_once']) {
    const definition = new RegExp(`^(?:async )?function ${name}\\(.*?^}\\n`, 'ms');
    if (!definition.test(glue)) throw new Error(`${name} not found in the wasm-bindgen glue`);
    glue = glue.replace(definition, '');
  }
  glue = glue.replace(/^let __wbg_init_promise;\n/m, '');
  // wasm-bindgen keeps the instance and the module for its own init paths, gone above: only the
  // exports are read, set by __wbg_init below. Its finalize also empties the memory views, which
  // no code can have made before: each instance has a glue of its own (createGlue), and a view is
  // made from the exports.
  const finalize = /^let wasmModule, wasmInstance, wasm;\nfunction __wbg_finalize_init\(instance, module\) \{\n {4}wasmInstance = instance;\n {4}wasm = instance\.exports;\n {4}wasmModule = module;\n(?: {4}cached\w+ = null;\n)* {4}return wasm;\n\}\n/m;
  if (!finalize.test(glue)) throw new Error('__wbg_finalize_init not found in the expected form in the wasm-bindgen glue');
  glue = glue.replace(finalize, 'let wasm;\n');
  if (/wasmModule|wasmInstance|__wbg_finalize_init/.test(glue)) throw new Error('the wasm-bindgen glue still reads wasmModule, wasmInstance or __wbg_finalize_init');
  // Every call of passStringToWasm0 passes the wasm's realloc: its path without one (encoding the
  // whole string first) is dead code.
  const withoutRealloc = /^(function passStringToWasm0\(arg, malloc, realloc\) \{\n)\s*if \(realloc === undefined\) \{\n.*?\n {4}\}\n/ms;
  if (!withoutRealloc.test(glue)) throw new Error('passStringToWasm0 without realloc not found in the wasm-bindgen glue');
  if ([...glue.matchAll(/passStringToWasm0\(([^)]*)\)/g)].some((call) => call[1].split(',').length !== 3)) {
    throw new Error('a passStringToWasm0 call without realloc in the wasm-bindgen glue');
  }
  glue = glue.replace(withoutRealloc, '$1');
  // ...and the same two exports as malloc and realloc, which the function reads itself rather than
  // every call site passing them.
  const allocators = new Set([...glue.matchAll(/passStringToWasm0\([^,)]*, ([^)]*)\)/g)].map((call) => call[1]));
  allocators.delete('malloc, realloc');
  if (allocators.size !== 1) throw new Error('passStringToWasm0 is called with more than one malloc and realloc in the wasm-bindgen glue');
  const [allocatorPair] = allocators;
  const [mallocExport, reallocExport] = allocatorPair.split(', ');
  glue = glue.split(`, ${allocatorPair})`).join(')');
  glue = glue.replace(/^function passStringToWasm0\(arg, malloc, realloc\) \{\n/m, `function passStringToWasm0(arg) {\n    const malloc = ${mallocExport}, realloc = ${reallocExport};\n`);
  if (/passStringToWasm0\([^,)]*,/.test(glue)) throw new Error('a passStringToWasm0 call left with its allocators in the wasm-bindgen glue');
  // Most strings out of the wasm are short ASCII (track()'s reply is its bare event_id): a plain
  // loop reads them in a fraction of TextDecoder's fixed cost per call. Anything else, or longer,
  // still goes through TextDecoder.
  const stringFromWasm = /^function getStringFromWasm0\(ptr, len\) \{\n\s*ptr = ptr >>> 0;\n/m;
  if (!stringFromWasm.test(glue)) throw new Error('getStringFromWasm0 not found in the wasm-bindgen glue');
  glue = glue.replace(stringFromWasm, (head) => `${head}    if (len <= 64) {
        const bytes = getUint8ArrayMemory0();
        let text = '', i = ptr;
        for (; i < ptr + len && bytes[i] < 128; i++) text += String.fromCharCode(bytes[i]);
        if (i === ptr + len) return text;
    }
`);
  // wasm-bindgen scales byte offsets and lengths by the element size, 1 for bytes: an identity on
  // the numbers the wasm passes.
  // Two helpers with one caller each are written in it (terser would keep each as a function
  // expression called in place): decodeText in getStringFromWasm0, its bytes the view it was passed.
  const decodeText = /^function decodeText\(bytes\) \{\n(.*?)^\}\n/ms.exec(glue);
  const decodeCall = /^( {4})return decodeText\((getUint8ArrayMemory0\(\)\.subarray\(ptr, ptr \+ len\))\);\n/m;
  if (!decodeText || !decodeCall.test(glue)) throw new Error('decodeText not found in the expected form in the wasm-bindgen glue');
  glue = glue.replace(decodeText[0], '').replace(decodeCall, (call, indent, view) => `${indent}const bytes = ${view};\n${decodeText[1]}`);
  if (glue.includes('decodeText')) throw new Error('decodeText left in the wasm-bindgen glue');
  const byteScale = /getUint8ArrayMemory0\(\)\.subarray\(ptr \/ 1, ptr \/ 1 \+ len\)/;
  if (!byteScale.test(glue)) throw new Error('getArrayU8FromWasm0 not found in the expected form in the wasm-bindgen glue');
  glue = glue.replace(byteScale, 'getUint8ArrayMemory0().subarray(ptr, ptr + len)').replace(/\b(\w+) \* 1, 1\)/g, '$1, 1)');
  if (/ptr \/ 1\b|\w \* 1, 1\)/.test(glue)) throw new Error('a byte scaled by 1 left in the wasm-bindgen glue');
  // getArrayU8FromWasm0 is written in its callers (shell_fill_random's shim).
  const arrayFromWasm = /^function getArrayU8FromWasm0\(ptr, len\) \{\n {4}ptr = ptr >>> 0;\n {4}return getUint8ArrayMemory0\(\)\.subarray\(ptr, ptr \+ len\);\n\}\n/m;
  if (!arrayFromWasm.test(glue)) throw new Error('getArrayU8FromWasm0 not found in the expected form in the wasm-bindgen glue');
  glue = glue.replace(arrayFromWasm, '').replace(/\bgetArrayU8FromWasm0\((\w+), (\w+)\)/g, 'getUint8ArrayMemory0().subarray($1 >>> 0, ($1 >>> 0) + $2)');
  if (glue.includes('getArrayU8FromWasm0')) throw new Error('getArrayU8FromWasm0 called in another form in the wasm-bindgen glue');
  glue += `function __wbg_init(module) {
  return WebAssembly.instantiate(module, __wbg_get_imports()).then(function (instance) {
    wasm = instance.exports;
  });
}
`;
  glue = glue.replace(/^export function /gm, 'function ');
  glue = glue.replace(/^export \{[^}]*\};?\s*$/gm, '');
  if (glue.includes('import.meta')) throw new Error('import.meta left in the wasm-bindgen glue');
  // set_relay is assembled here: the relay function goes to the transport snippet directly and only
  // the tab id into the wasm (src/shell/transport.rs), so no JS object ever enters the wasm.
  // It also hands over the script nonce, which the loader gave right before it in a call of its own.
  // Its three calls are written out as their bodies, with set_relay's parameters named as theirs:
  // terser would keep each call as a function expression called in place.
  const callees = [['set_script_nonce', glue], ['transport_relay', snippets], ['set_tab_id', glue]].map(([name, source]) => {
    const definition = new RegExp(`^function ${name}\\(([\\w, ]*)\\) \\{\\n(.*?)^\\}\\n`, 'ms').exec(source);
    if (!definition) throw new Error(`${name} not found in the wasm-bindgen glue or its snippets`);
    if (/\b(?:const|let|var|function|return)\b/.test(definition[2])) throw new Error(`${name} declares or returns something: its body cannot be written into set_relay as it is`);
    return definition;
  });
  const params = callees.map((definition) => definition[1]).join(', ');
  if (params !== 'nonce, f, shared, tab_id') throw new Error(`set_relay's callees take (${params}), not (nonce, f, shared, tab_id)`);
  const api = 'init: __wbg_init, command: command, '
    + `set_relay: function (f, tab_id, shared, nonce) {\n${callees.map((definition) => definition[2]).join('')}}`;
  // Its const and let declarations become var (19 B of gzip: terser then joins them with the
  // others of their scope): the same behaviour here, where no closure is made in a loop that
  // declares one (the glue's two loops, reading and writing a string's bytes, make none), nothing
  // is read before its declaration runs (the snippets' and glue's top-level state is first read by
  // calls from the wasm, made after init), and no name is declared twice in one scope (as let, that
  // was already an error). A newer wasm-bindgen's glue needs the same check.
  const factory = `${snippets}${glue}`.replace(/^(\s*)(?:const|let) /gm, '$1var ');
  return `function createGlue() {\n${factory}\nreturn { ${api} };\n}\n`;
}

// The message text (src/core/error.rs, `messages!`): every declaration in src/, each key once, as
// { key: text }. Its name carries a hash of its content, so a cached table always matches the
// loader and wasm that name it; the loader fetches it only once it has something to report.
function messageTable() {
  const table = {};
  const declaration = /^\s*(?:pub(?:\([^)]*\))?\s+)?[A-Z][A-Z0-9_]*\s*=\s*"([0-9A-Za-z]{2})"\s*("(?:[^"\\]|\\["\\])*")\s*;\s*$/;
  for (const file of listFiles(join(root, 'src')).filter((f) => f.endsWith('.rs'))) {
    for (const block of readFileSync(file, 'utf8').matchAll(/crate::messages!\s*\{\n([\s\S]*?)\n\}/g)) {
      for (const line of block[1].split('\n')) {
        if (!line.trim() || line.trim().startsWith('//')) continue;
        const m = declaration.exec(line);
        if (!m) throw new Error(`build: a messages! line in ${file} is not NAME = "k0" "text"; (escapes: \\" and \\\\ only): ${line.trim()}`);
        if (Object.hasOwn(table, m[1])) throw new Error(`build: message key "${m[1]}" is declared twice (again in ${file})`);
        table[m[1]] = JSON.parse(m[2]);
      }
    }
  }
  return table;
}
const messages = messageTable();
// The loader's own: each `words('L0', 'text')` call becomes its token. A key the core declared may be
// named only for its very text (one text, one key); the loader's own keys start with L.
const loader = readFileSync(join(root, 'www', 'loader.js'), 'utf8').replace(/\bwords\('([0-9A-Za-z]{2})', ('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\)/g, (call, key, literal) => {
  const text = new Function(`return ${literal};`)();
  if (Object.hasOwn(messages, key) ? messages[key] !== text : !key.startsWith('L')) throw new Error(`build: the loader's message key "${key}" must name the text declared under it, or be a new key starting with L`);
  messages[key] = text;
  return JSON.stringify('\u0001' + key);
});
if (/\bwords\('/.test(loader)) throw new Error('build: a words() call in www/loader.js is not words(\'L0\', \'text\')');
// The plain-JS path with its delivery code (www/loader.js, JS_PATH_DELIVERY): a file of its own,
// loaded only where WebAssembly cannot run; tandem.js keeps the copy without it.
const jsPathOn = 'var JS_PATH_DELIVERY = true;';
if (loader.split(jsPathOn).length !== 2) throw new Error(`build: www/loader.js must declare ${jsPathOn} once`);
const jsPathCode = await minify(`(function () {
'use strict';
var TANDEM_VERSION = ${JSON.stringify(version)};
var TANDEM_MESSAGES = '';
var TANDEM_JS_PATH = '';
var TANDEM_WASM = '';
${loader}
window.__tandemJsPath = createJsPath;
})();
`, false);
const jsPathFile = `tandem-jspath-${createHash('sha256').update(jsPathCode).digest('hex').slice(0, 12)}.js`;
const messagesJson = JSON.stringify(messages);
const messagesFile = `tandem-messages-${createHash('sha256').update(messagesJson).digest('hex').slice(0, 12)}.json`;
writeFileSync(join(outDir, messagesFile), messagesJson);

writeFileSync(join(outDir, jsPathFile), jsPathCode);
// Its gates written as constants, so terser drops what they guard (a `false` var would not do: a
// hoisted function may run before the var is set, so terser keeps both branches).
const loaderWithoutDelivery = loader.replace(jsPathOn, '').replaceAll('if (!JS_PATH_DELIVERY) return;', 'return;');
if (loaderWithoutDelivery.includes('JS_PATH_DELIVERY')) throw new Error('build: JS_PATH_DELIVERY is only tested as `if (!JS_PATH_DELIVERY) return;`');

const shared = `var TANDEM_VERSION = ${JSON.stringify(version)};\nvar TANDEM_WASM = ${JSON.stringify(wasmId)};\nvar TANDEM_MESSAGES = ${JSON.stringify(messagesFile)};\nvar TANDEM_JS_PATH = ${JSON.stringify(jsPathFile)};\n${glueFactory()}${loaderWithoutDelivery}`;

const classic = `(function () {
'use strict';
${shared}
if (typeof window !== 'undefined') {
  var currentScript = document.currentScript;
  bootTandem(window, {
    src: currentScript ? currentScript.src : '',
    nonce: currentScript ? currentScript.nonce || currentScript.getAttribute('nonce') || '' : '',
    wasm: currentScript ? currentScript.getAttribute('data-tandem-wasm') : null,
  });
}
})();
`;

// The module touches no browser global until it is called, so it is safe to import during
// server-side rendering; it installs the same window.tandem as the snippet (one instance a page).
const moduleSource = `${shared}
// A module has no document.currentScript: the CSP nonce for the scripts Tandem injects (load: true)
// is the one the page gives its own scripts.
function pageNonce() {
  try {
    var script = document.querySelector('script[nonce]');
    return (script && (script.nonce || script.getAttribute('nonce'))) || '';
  } catch (e) {
    return '';
  }
}
// The wasm's and the message text's URLs written as bundlers look for an asset (Vite, webpack 5, Parcel, Rollup's plugin):
// a bundled module then fetches the copy the bundler emitted, not a path next to the bundle.
function live() {
  return bootTandem(window, {
    src: import.meta.url, nonce: pageNonce(), wasm: new URL('./tandem_bg.wasm', import.meta.url).href,
    messages: new URL('./${messagesFile}', import.meta.url).href,
    jsPath: new URL('./${jsPathFile}', import.meta.url).href,
  });
}
export function tandem() {
  if (typeof window === 'undefined') return null;
  var api = live();
  return api.apply(null, arguments);
}
export function ready(timeoutMs) {
  if (typeof window === 'undefined') return Promise.resolve(false);
  live();
  var deadline = Date.now() + (timeoutMs || 10000);
  return new Promise(function (resolve) {
    (function check() {
      // On the plain-JS path (WebAssembly refused) the wasm will never be live.
      if (window.tandem && window.tandem.degraded) resolve(false);
      else if (window.tandem && window.tandem.loaded === true) resolve(true);
      else if (Date.now() > deadline) resolve(false);
      else setTimeout(check, 10);
    })();
  });
}
export default tandem;
`;

// terser rather than esbuild: 400 B less gzip on tandem.js (8,023 against 8,426 for the same
// source). Its `if` statements are left as statements (conditionals: false): folded into `&&`, `||`
// and `?:` chains they are 430 B shorter but 36 B bigger in gzip, as the same test written in
// different shapes no longer repeats. Only simple functions are inlined, not those with arguments
// or variables (inline: 1; 10 B smaller in gzip), and a second pass finds 6 B more (a third gives
// them back). Function declarations go first in their scope, where JS hoists them anyway
// (hoist_funs: 21 B). Loops are left in the shape written (loops: false: 3 B). toplevel, unsafe,
// hoist_vars, sequences, comparisons, inline: 2 and a third pass did not help; pure_getters would
// drop reads made for their effect (the storage warm-up).
async function minify(code, module) {
  return (await terser(code, { module, compress: { conditionals: false, inline: 1, passes: 2, hoist_funs: true, loops: false }, format: { comments: false } })).code;
}

// V8's explicit compile hint (Chrome 136+; a plain comment elsewhere): every function of the
// loader and glue is compiled on the script-streaming thread while the file downloads, instead of
// one by one on the main thread at its first call, which fell between the wasm instance going live
// and the first PageView request (55 lazy compiles there). It must be the file's first line.
writeFileSync(join(outDir, 'tandem.js'), '//# allFunctionsCalledOnLoad\n' + (await minify(classic, false)));
writeFileSync(join(outDir, 'tandem.mjs'), await minify(moduleSource, true));
copyFileSync(join(root, 'www', 'tandem.d.ts'), join(outDir, 'tandem.d.ts'));

let total = 0;
for (const name of ['tandem.js', 'tandem_bg.wasm']) {
  const bytes = readFileSync(join(outDir, name));
  const gz = gzipSync(bytes, { level: 9 }).length;
  total += gz;
  console.log(`${name.padEnd(16)} ${String(bytes.length).padStart(7)} B  gzip -9 ${String(gz).padStart(6)} B`);
}
console.log(`${'loaded by page'.padEnd(16)} ${' '.repeat(9)}  gzip -9 ${String(total).padStart(6)} B`);
