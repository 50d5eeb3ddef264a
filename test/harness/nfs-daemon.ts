// A stand-in daemon for the NFS tests: the journal, pool, flusher, vfs and
// NFS server put together as src/daemon builds them, in a process of its own
// (libnfs's synchronous calls block the test's thread, and a restart should
// be a real one). Prints one JSON line {port, verifier} when serving (and
// {requests, connections} at each SIGUSR1); SIGTERM
// stops it the way the daemon does: server (its open files fsynced), flusher
// drained, journal closed.
//
// Environment: NFSD_DSN, NFSD_PREFIX, NFSD_CACHE, NFSD_PORT, NFSD_EXPORT, NFSD_OWNER, NFSD_IDLE_MS, NFSD_FLUSH (0: no flusher).
import { Journal } from "../../src/journal/journal.ts";
import { createLogger } from "../../src/log.ts";
import { startNfsServer } from "../../src/nfs/server.ts";
import { connect } from "../../src/store/connect.ts";
import { Flusher } from "../../src/sync/flusher.ts";
import { PgVfs } from "../../src/vfs/vfs.ts";

const env = process.env;
const dsn = env.NFSD_DSN!;
const prefix = env.NFSD_PREFIX!;
const log = createLogger(env.NFSD_LOG ?? "warn");
const journal = new Journal({ cacheDir: env.NFSD_CACHE!, dsn, prefix, cacheMaxSize: 1 << 30 });
journal.collectGarbage();
const sql = connect({ dsn, poolSize: 4, preparedStatements: true, connectTimeout: 5 });
const flusher = new Flusher({ journal, sql, dsn, log });
const vfs = new PgVfs({ journal, sql: () => sql, prefix, readOnly: false, metadataTtlMs: 1000, log });
await vfs.loadRoot();
const server = await startNfsServer({
  vfs, journal, port: Number(env.NFSD_PORT ?? 0), exportPath: env.NFSD_EXPORT!, ownerUid: Number(env.NFSD_OWNER), log,
  ...(env.NFSD_IDLE_MS ? { idleCloseMs: Number(env.NFSD_IDLE_MS) } : {}),
});
const background = env.NFSD_FLUSH === "0" ? null : flusher.run({ intervalMs: 200 });
process.stdout.write(JSON.stringify({ port: server.port, verifier: server.verifier.toString("hex") }) + "\n");

// SIGUSR1: one JSON line with the server's counters (bench/nfs.ts reads requests per phase).
process.on("SIGUSR1", () => process.stdout.write(JSON.stringify(server.stats()) + "\n"));

let stopping = false;
process.on("SIGTERM", async () => {
  if (stopping) return;
  stopping = true;
  await server.close();
  await background?.stop();
  vfs.commitAll();
  if (env.NFSD_FLUSH !== "0") await flusher.flushAll().catch(() => {});
  await sql.end({ timeout: 5 });
  journal.close();
  process.exit(0);
});
