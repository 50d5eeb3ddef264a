// After a CLI command changed keys (restore, purge, purge-prefix, batch), every live mount of this user whose
// prefix overlaps them is asked over its control socket to take the change in, and the command waits for the
// answer (bounded): the change is visible in the mount before the command returns. Purges leave no head row
// to notify about, so without this a mount would show a purged file until its metadata TTL.
import { request } from "../daemon/control.ts";
import { allRecords } from "../daemon/registry.ts";
import { warn } from "./run.ts";

const ANSWER_MS = 5000;

function overlaps(prefix: string, key: string): boolean {
  return key.startsWith(prefix) || (key.endsWith("/") && prefix.startsWith(key));
}

export async function tellMounts(keys: string[]): Promise<void> {
  if (keys.length === 0) return;
  let records;
  try {
    records = allRecords();
  } catch {
    return; // no runtime directory: no mounts
  }
  await Promise.all(
    records
      .filter((r) => r.state === "ready" && r.socket && keys.some((k) => overlaps(r.prefix, k)))
      .map(async (r) => {
        const mine = keys.filter((k) => overlaps(r.prefix, k));
        try {
          await request(r.socket, { cmd: "changed", keys: mine }, undefined, ANSWER_MS);
        } catch (e) {
          warn(`The mount at ${r.mountpoint} did not confirm the change (${(e as Error).message}); it shows it within its metadata TTL.`);
        }
      }),
  );
}
