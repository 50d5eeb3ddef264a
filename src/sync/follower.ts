// Following other writers: every statement that inserts into pgfiles sends one
// NOTIFY on "pgfiles_changes" (empty payload; see store/schema.ts), and every
// head row carries the change sequence number it was last moved with. A mount
// LISTENs, and on each notification reads the head rows of its prefix whose
// seq is above the last one it saw, then hands the changed keys to the vfs,
// which reloads the affected directories and drops the kernel's cached entries
// and pages. Where LISTEN is impossible (PgBouncer in transaction mode) or the
// connection drops, the same catch-up runs on a timer: the metadata TTL is
// only the last backstop.
import type { Logger } from "pino";
import { errorMessage } from "../errors.ts";
import { likePrefix } from "../keys.ts";
import type { Sql } from "../store/connect.ts";

export interface Change {
  key: string;
  id: string;
  deleted: boolean;
}

export interface FollowerOptions {
  sql: Sql;
  prefix: string;
  onChanges: (changes: Change[]) => Promise<void>;
  log?: Logger;
  /** Catch-up without a notification, in case one was missed. Default 5 s (1 s while LISTEN is unavailable). */
  pollMs?: number;
  /** Use LISTEN (false: poll only, e.g. through PgBouncer in transaction mode). Default true. */
  listen?: boolean;
}

const PAGE = 5000;
/** How many sequence numbers below the last one seen each catch-up reads again. */
const LOOK_BACK = 2000n;

export class Follower {
  private lastSeq: bigint | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private timer: ReturnType<typeof setInterval> | null = null;
  private unlisten: (() => Promise<void>) | null = null;
  /** Notifications seen and catch-ups run: for status and tests. */
  readonly counts = { notifications: 0, catchUps: 0, changes: 0 };

  constructor(private readonly o: FollowerOptions) {}

  /** Starts following; never throws (Postgres away: the timer keeps trying). */
  async start(): Promise<void> {
    let listening = false;
    if (this.o.listen !== false) {
      try {
        const sub = await this.o.sql.listen(
          "pgfiles_changes",
          () => {
            this.counts.notifications++;
            this.kick();
          },
          // (Re)connected: whatever happened while the listener was away is caught up.
          () => this.kick(),
        );
        this.unlisten = () => sub.unlisten();
        listening = true;
      } catch (e) {
        this.o.log?.warn({ err: errorMessage(e) }, "cannot LISTEN for other writers' changes; polling instead");
      }
    }
    const poll = this.o.pollMs ?? (listening ? 5000 : 1000);
    this.timer = setInterval(() => this.kick(), poll);
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running?.catch(() => {});
    await this.unlisten?.().catch(() => {});
  }

  /** Runs a catch-up now, or once more after the one in progress. */
  kick(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.catchUp();
        } while (this.again && !this.stopped);
      } catch (e) {
        this.o.log?.debug({ err: errorMessage(e) }, "catching up with other writers failed; will retry");
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }

  private async catchUp() {
    const sql = this.o.sql;
    const [{ top }] = await sql`SELECT COALESCE(max(seq), 0)::text AS top FROM pgfiles_head`;
    const upTo = BigInt(top);
    if (this.lastSeq === null) {
      // The first look: the mount has just read what it needs; only later changes matter.
      this.lastSeq = upTo;
      return;
    }
    this.counts.catchUps++;
    // Sequence numbers are taken inside the writers' transactions, which commit in another order: a row with a
    // smaller seq can become visible after a larger one was seen. Look back a little each time (changes seen
    // again are skipped by the vfs: the node already shows that version).
    let from = this.lastSeq > LOOK_BACK ? this.lastSeq - LOOK_BACK : 0n;
    while (from < upTo && !this.stopped) {
      const rows = await sql`
        SELECT key, id::text AS id, deleted, seq::text AS seq FROM pgfiles_head
         WHERE seq > ${from.toString()}::bigint AND seq <= ${upTo.toString()}::bigint AND key LIKE ${likePrefix(this.o.prefix)}
         ORDER BY seq LIMIT ${PAGE}`;
      const changes = rows.map((r) => ({ key: r.key as string, id: r.id as string, deleted: r.deleted as boolean }));
      if (changes.length > 0) {
        this.counts.changes += changes.length;
        await this.o.onChanges(changes);
      }
      if (rows.length < PAGE) break;
      from = BigInt(rows[rows.length - 1].seq as string);
    }
    this.lastSeq = upTo;
  }
}
