// Runs a command body with a Context and always closes it.
import type { Command } from "commander";
import { Context } from "./context.ts";

export async function withContext<T>(cmd: Command, fn: (ctx: Context) => Promise<T>): Promise<T> {
  let root = cmd;
  while (root.parent) root = root.parent;
  const ctx = new Context(root);
  try {
    return await fn(ctx);
  } finally {
    await ctx.close();
  }
}

export function out(line = "") {
  process.stdout.write(`${line}\n`);
}

export function warn(line: string) {
  process.stderr.write(`pgfiles: ${line}\n`);
}

/** Left-aligned columns. */
export function table(header: string[], rows: string[][]): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const fmt = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]))).join("  ").trimEnd();
  return [fmt(header), ...rows.map(fmt)].join("\n");
}

/** Reports what a delivery did, on stderr. */
export function reportOffline(offline: string | null, pending: number, journalDir: string) {
  if (offline) {
    warn(`${offline} ${pending === 1 ? "1 version stays" : `${pending} versions stay`} queued in the local journal (${journalDir}); the next pgfiles command or mount that reaches PostgreSQL delivers them.`);
  }
}
