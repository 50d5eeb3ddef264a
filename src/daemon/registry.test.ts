// Mount records: found by directory, and the records of daemons that died
// without cleaning up (kill -9) are removed when the records are read.
import { afterAll, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { allRecords, recordPath, socketPath, writeRecord, type MountRecord } from "./registry.ts";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pgfiles-registry-"));
const saved = process.env.XDG_RUNTIME_DIR;
process.env.XDG_RUNTIME_DIR = tmp;
afterAll(() => {
  if (saved === undefined) delete process.env.XDG_RUNTIME_DIR;
  else process.env.XDG_RUNTIME_DIR = saved;
  fs.rmSync(tmp, { recursive: true, force: true });
});

function record(mountpoint: string, pid: number, state: MountRecord["state"], startedAt = Date.now()): MountRecord {
  return { pid, mountpoint, socket: socketPath(mountpoint), prefix: "p/", journal: "/nowhere", backend: "fuse", startedAt, state };
}

test("records of dead daemons are removed with their sockets; live ones and fresh failures stay", () => {
  const dead = Bun.spawnSync(["true"]).pid; // exited and reaped: no such process
  writeRecord(record("/mnt/live", process.pid, "ready"));
  writeRecord(record("/mnt/dead", dead, "ready"));
  fs.writeFileSync(socketPath("/mnt/dead"), "");
  writeRecord(record("/mnt/failed-now", dead, "failed"));
  writeRecord(record("/mnt/failed-long-ago", dead, "failed", Date.now() - 10 * 60_000));
  const seen = allRecords().map((r) => r.mountpoint).sort();
  expect(seen).toEqual(["/mnt/failed-now", "/mnt/live"]);
  expect(fs.existsSync(recordPath("/mnt/dead"))).toBe(false);
  expect(fs.existsSync(socketPath("/mnt/dead"))).toBe(false);
  expect(fs.existsSync(recordPath("/mnt/failed-long-ago"))).toBe(false);
  expect(fs.existsSync(recordPath("/mnt/live"))).toBe(true);
});
