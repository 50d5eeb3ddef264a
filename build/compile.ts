// Compiles the CLI into one self-contained executable with `bun build --compile`.
//   bun build/compile.ts                 → dist/pgfiles for this machine
//   bun build/compile.ts --target T ...  → dist/pgfiles-T (e.g. bun-linux-arm64)
// build/release.ts uses compileBinary() for the four release targets.
import { $ } from "bun";
import fs from "node:fs";
import path from "node:path";

export const ROOT = path.resolve(import.meta.dir, "..");

export interface BuildInfo {
  version: string;
  /** The commit the binary reports, with "-dirty" when tracked files differ from it. */
  commit: string;
}

/** package.json's version and the checked-out commit. */
export async function buildInfo(): Promise<BuildInfo> {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string };
  const commit = (await $`git -C ${ROOT} rev-parse --short=12 HEAD`.nothrow().quiet()).stdout.toString().trim() || "unknown";
  const dirty = (await $`git -C ${ROOT} status --porcelain --untracked-files=no`.nothrow().quiet()).stdout.toString().trim() !== "";
  return { version: pkg.version, commit: commit + (dirty ? "-dirty" : "") };
}

/** Compiles the CLI (src/cli/entry.ts) for `target` (a Bun target such as bun-darwin-arm64; null = this machine). */
export async function compileBinary(target: string | null, outfile: string, info: BuildInfo): Promise<void> {
  fs.mkdirSync(path.dirname(outfile), { recursive: true });
  const result = await Bun.build({
    entrypoints: [path.join(ROOT, "src/cli/entry.ts")],
    compile: target ? { target: target as never, outfile } : { outfile },
    minify: true,
    bytecode: true,
    format: "esm",
    sourcemap: "none",
    define: {
      PGFILES_VERSION: JSON.stringify(info.version),
      PGFILES_COMMIT: JSON.stringify(info.commit),
    },
  });
  if (!result.success) {
    throw new Error(`bun build --compile${target ? ` --target ${target}` : ""} failed:\n${result.logs.map(String).join("\n")}`);
  }
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const targets: (string | null)[] = [];
  for (let i = 0; i < args.length; i++) if (args[i] === "--target") targets.push(args[++i]);
  if (targets.length === 0) targets.push(null);
  const info = await buildInfo();
  for (const target of targets) {
    const outfile = path.join(ROOT, "dist", target ? `pgfiles-${target.replace(/^bun-/, "")}` : "pgfiles");
    const t0 = performance.now();
    try {
      await compileBinary(target, outfile, info);
    } catch (e) {
      console.error((e as Error).message);
      process.exit(1);
    }
    const size = fs.statSync(outfile).size;
    console.log(`${path.relative(ROOT, outfile)}: ${(size / 1048576).toFixed(1)} MiB in ${((performance.now() - t0) / 1000).toFixed(1)} s (${info.version}, ${info.commit})`);
  }
}
