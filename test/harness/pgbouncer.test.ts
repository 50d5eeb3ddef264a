// Proves the pgbouncer harness works and that pooling really is per transaction:
// with one server connection, two concurrently open clients share one backend and
// see each other's session state (in session mode the second client would wait
// for the first to disconnect).
import { afterAll, beforeAll, expect, test } from "bun:test";
import postgres from "postgres";
import { startCluster, type Cluster } from "./postgres.ts";
import { startBouncer, type Bouncer } from "./pgbouncer.ts";

let cluster: Cluster | undefined;
let bouncer: Bouncer | undefined;
let single: Bouncer | undefined;
const clients: postgres.Sql[] = [];

function connect(dsn: string, max: number) {
  const sql = postgres(dsn, { prepare: false, max, connect_timeout: 5, idle_timeout: 5, onnotice: () => {} });
  clients.push(sql);
  return sql;
}

beforeAll(async () => {
  cluster = await startCluster();
  bouncer = await startBouncer(cluster);
  single = await startBouncer(cluster, { poolSize: 1 });
}, 30_000);

afterAll(async () => {
  try {
    await Promise.all(clients.map((c) => c.end({ timeout: 2 })));
  } finally {
    try {
      await single?.stop();
    } finally {
      try {
        await bouncer?.stop();
      } finally {
        await cluster?.destroy();
      }
    }
  }
}, 30_000);

test("admin console reports pool_mode=transaction", () => {
  const config = bouncer!.admin("SHOW CONFIG");
  const poolMode = config.split("\n").find((l) => l.startsWith("pool_mode|"));
  expect(poolMode?.split("|")[1]).toBe("transaction");
});

test("a transaction through the bouncer commits and reads back", async () => {
  const sql = connect(bouncer!.dsn, 4);
  await sql`create table bouncer_t (id int primary key, v text not null)`;
  await sql.begin(async (tx) => {
    await tx`insert into bouncer_t values (1, 'one'), (2, 'two')`;
    const [{ n }] = await tx`select count(*)::int as n from bouncer_t`;
    expect(n).toBe(2);
  });
  const rows = await sql`select id, v from bouncer_t order by id`;
  expect(rows.map((r) => [r.id, r.v])).toEqual([
    [1, "one"],
    [2, "two"],
  ]);
  // Many concurrent transactions over 4 client connections and 10 server connections.
  await Promise.all(
    Array.from({ length: 20 }, (_, i) => sql.begin((tx) => tx`insert into bouncer_t values (${i + 10}, ${"x" + i})`)),
  );
  const [{ c }] = await sql`select count(*)::int as c from bouncer_t`;
  expect(c).toBe(22);
  // And it is really the cluster behind it.
  expect(cluster!.psql("select count(*) from bouncer_t")).toBe("22");
  // The wildcard entry materialised a pool for `postgres` pointing at the cluster.
  const db = bouncer!.admin("SHOW DATABASES").split("\n").find((l) => l.startsWith("postgres|"));
  expect(db).toContain(`|127.0.0.1|${cluster!.port}|postgres|`);
}, 10_000);

test("session state does not stay with a client: two open clients share one server connection", async () => {
  const sql = connect(single!.dsn, 2);
  const a = await sql.reserve();
  const b = await sql.reserve();
  try {
    // Both client connections are open at once; with default_pool_size=1 a session-mode
    // bouncer would make b wait for a to disconnect. Here they share the only backend.
    const [{ pid: pidA }] = await a`select pg_backend_pid() as pid`;
    const [{ pid: pidB }] = await b`select pg_backend_pid() as pid`;
    expect(pidB).toBe(pidA);

    // Session state set by a (outside any transaction) leaks to b's next transaction...
    await a`select set_config('pgfiles.marker', 'set-by-a', false)`;
    const [{ m }] = await b`select current_setting('pgfiles.marker', true) as m`;
    expect(m).toBe("set-by-a");

    const pools = single!.admin("SHOW POOLS");
    expect(pools).toContain("|transaction");
  } finally {
    a.release();
    b.release();
  }
}, 10_000);
