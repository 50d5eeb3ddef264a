// Compiles the CLI into one self-contained executable with `bun build --compile`.
//   bun build/compile.ts                 → dist/pgfiles for this machine
//   bun build/compile.ts --target T ...  → dist/pgfiles-T (e.g. bun-linux-arm64)
import { $ } from "bun";
import fs from "node:fs";
import path from "node:path";

const root = path.resolve(import.meta.dir, "..");
const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { version: string };
const commit = (await $`git -C ${root} rev-parse --short=12 HEAD`.nothrow().quiet()).stdout.toString().trim() || "unknown";
const dirty = (await $`git -C ${root} status --porcelain --untracked-files=no`.nothrow().quiet()).stdout.toString().trim() !== "";

const args = process.argv.slice(2);
const targets: (string | null)[] = [];
for (let i = 0; i < args.length; i++) if (args[i] === "--target") targets.push(args[++i]);
if (targets.length === 0) targets.push(null);

fs.mkdirSync(path.join(root, "dist"), { recursive: true });
for (const target of targets) {
  const outfile = path.join(root, "dist", target ? `pgfiles-${target.replace(/^bun-/, "")}` : "pgfiles");
  const t0 = performance.now();
  const result = await Bun.build({
    entrypoints: [path.join(root, "src/cli/main.ts")],
    compile: target ? { target: target as never, outfile } : { outfile },
    minify: true,
    sourcemap: "none",
    define: {
      PGFILES_VERSION: JSON.stringify(pkg.version),
      PGFILES_COMMIT: JSON.stringify(commit + (dirty ? "-dirty" : "")),
    },
  });
  if (!result.success) {
    for (const log of result.logs) console.error(log);
    process.exit(1);
  }
  const size = fs.statSync(outfile).size;
  console.log(`${path.relative(root, outfile)}: ${(size / 1048576).toFixed(1)} MiB in ${((performance.now() - t0) / 1000).toFixed(1)} s (${pkg.version}, ${commit}${dirty ? "-dirty" : ""})`);
}
