// /dev/fuse as a file descriptor: open it, clone a session onto a second fd,
// read requests in a Worker, write replies. No struct knowledge lives here
// (that is codec.ts); this file only knows syscalls and their errnos.
import fs from "node:fs";
import { dlopen, FFIType, ptr, read as peek } from "bun:ffi";
import { backingMap, FUSE_DEV_IOC_BACKING_CLOSE, FUSE_DEV_IOC_BACKING_OPEN, FUSE_DEV_IOC_CLONE, FUSE_MIN_READ_BUFFER } from "./codec.ts";

/** Linux errno numbers this layer distinguishes (same on x86_64 and aarch64). */
export const ENOENT = 2;
export const EINTR = 4;
export const EAGAIN = 11;
export const EACCES = 13;
export const ENODEV = 19;
export const EPERM = 1;

/**
 * The read buffer must hold the largest request: max_write bytes of WRITE data
 * plus its headers. The kernel refuses reads into anything smaller than
 * max(8 KiB, max_write + 4 KiB) with EINVAL.
 */
export const MAX_WRITE = 1 << 20;
export const READ_BUFFER_SIZE = Math.max(FUSE_MIN_READ_BUFFER, MAX_WRITE + 4096);

function loadLibc() {
  return dlopen("libc.so.6", {
    ioctl: { args: [FFIType.i32, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    socketpair: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
    recvmsg: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i64 },
    __errno_location: { args: [], returns: FFIType.ptr },
  }).symbols;
}
let libcSymbols: ReturnType<typeof loadLibc> | undefined;
/** libc through bun:ffi, opened on first use so that importing this file costs nothing on other systems. */
export function libc(): ReturnType<typeof loadLibc> {
  return (libcSymbols ??= loadLibc());
}
/** errno of the calling thread after a failed libc call. */
export function errno(): number {
  return peek.i32(libc().__errno_location()!, 0);
}

export class DeviceError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
    this.name = "DeviceError";
  }
}

/** Opens /dev/fuse for reading and writing (the kernel needs both on a session fd). */
export function openDevice(): number {
  try {
    return fs.openSync("/dev/fuse", "r+");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const code = typeof err.errno === "number" ? Math.abs(err.errno) : ENODEV;
    throw new DeviceError(code, `cannot open /dev/fuse (${err.code ?? "error"}): is the fuse module loaded and may this user use it?`);
  }
}

/**
 * A second fd on the same FUSE connection. Each fd gets its own queue of
 * requests being processed, so two threads reading two fds serve twice the
 * metadata requests of one (measured in ../shared/reference/fuse-perf.ts).
 * A reply must be written to the fd its request was read from.
 */
export function cloneDevice(sessionFd: number): number {
  const fd = openDevice();
  const arg = new Uint32Array([sessionFd]);
  if (libc().ioctl(fd, FUSE_DEV_IOC_CLONE, ptr(arg)) !== 0) {
    const e = errno();
    fs.closeSync(fd);
    throw new DeviceError(e, `FUSE_DEV_IOC_CLONE failed with errno ${e}`);
  }
  return fd;
}

/**
 * Registers an open local file as a passthrough backing file of the connection
 * and returns its backing id for an OPEN or CREATE reply (FOPEN_PASSTHROUGH).
 * Needs CAP_SYS_ADMIN and a kernel with FUSE_PASSTHROUGH (6.9+).
 */
export function openBacking(deviceFd: number, fileFd: number): number {
  const id = libc().ioctl(deviceFd, FUSE_DEV_IOC_BACKING_OPEN, ptr(backingMap(fileFd)));
  if (id <= 0) {
    const e = errno();
    throw new DeviceError(e, `FUSE_DEV_IOC_BACKING_OPEN failed with errno ${e}`);
  }
  return id;
}

/** Forgets a backing id. Files the kernel already opened with it keep their backing file. */
export function closeBacking(deviceFd: number, id: number): void {
  libc().ioctl(deviceFd, FUSE_DEV_IOC_BACKING_CLOSE, ptr(new Uint32Array([id])));
}

export function closeDevice(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // Already closed: nothing left to release.
  }
}

export type WriteResult = "ok" | "interrupted" | "gone";

/**
 * Writes one whole message (a reply or a notification): the kernel takes a
 * message only in a single write(2).
 * "interrupted": ENOENT, the request was interrupted or aborted and the kernel
 * no longer waits for this reply. "gone": the connection is over (ENODEV after
 * unmount or abort) — the readers see the same and end the session.
 * A reply write never blocks for long (the kernel copies it and wakes the
 * caller), so replies are written from the main thread with fs.writeSync.
 */
export function writeMessage(fd: number, message: Uint8Array): WriteResult {
  try {
    fs.writeSync(fd, message);
    return "ok";
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return "interrupted";
    if (code === "ENODEV" || code === "EBADF" || code === "ECONNABORTED") return "gone";
    throw e;
  }
}

/**
 * A reader thread: blocks in read(2) on one fd (a blocking read on the main
 * thread would stall Bun's event loop) and posts each request to the owner.
 *
 * The worker reads into one reusable buffer of READ_BUFFER_SIZE and posts an
 * exact-size copy (ArrayBuffer.slice: one memcpy of the request's own length),
 * transferred to the main thread, so metadata requests never carry a 1 MiB
 * buffer and the large read buffer is never re-allocated or re-faulted.
 *
 * The worker's code is a source string turned into a blob: URL, not a module
 * file, so that it also runs inside the `bun build --compile` binary without
 * extra entrypoints. Its only dependency is node:fs.
 *
 * Measured here (2 cores, Bun 1.4.5): the hop from this worker to the main
 * thread costs ~35 µs a request (postMessage; a SharedArrayBuffer with
 * Atomics.waitAsync is no faster), which caps one client's uncached stat at
 * ~3–5k/s; fs.readSync and a bun:ffi read(2) were indistinguishable within
 * the run-to-run noise, so the worker stays free of FFI.
 */
export interface Reader {
  /** The fd this reader reads from: replies to its requests go there. */
  readonly fd: number;
  stop(): void;
}

export type ReaderEnd = { code: string; errno: number };

const readerSource = `
const fs = require("node:fs");
let fd = -1, size = 0;
onmessage = (ev) => {
  fd = ev.data.fd; size = ev.data.size;
  const buf = Buffer.allocUnsafe(size);
  for (;;) {
    let n;
    try { n = fs.readSync(fd, buf, 0, size, null); }
    catch (e) {
      // ENOENT: the request we were about to get was interrupted; EINTR/EAGAIN: try again.
      if (e.code === "ENOENT" || e.code === "EINTR" || e.code === "EAGAIN") continue;
      postMessage({ end: e.code || "EIO", errno: typeof e.errno === "number" ? Math.abs(e.errno) : 5 });
      break;
    }
    if (n === 0) { postMessage({ end: "EOF", errno: 0 }); break; }
    const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + n);
    postMessage(ab, [ab]);
  }
};
`;
let readerUrl: string | undefined;

export function startReader(
  fd: number,
  onRequest: (request: Buffer, fd: number) => void,
  onEnd: (end: ReaderEnd) => void,
): Reader {
  readerUrl ??= URL.createObjectURL(new Blob([readerSource], { type: "application/javascript" }));
  const worker = new Worker(readerUrl);
  let ended = false;
  const end = (e: ReaderEnd) => {
    if (ended) return;
    ended = true;
    worker.terminate();
    onEnd(e);
  };
  worker.onmessage = (ev: MessageEvent) => {
    const m = ev.data;
    if (m instanceof ArrayBuffer) onRequest(Buffer.from(m), fd);
    else if (m && typeof m.end === "string") end({ code: m.end, errno: m.errno });
  };
  worker.onerror = (ev: ErrorEvent) => end({ code: `worker error: ${ev.message}`, errno: 5 });
  worker.postMessage({ fd, size: READ_BUFFER_SIZE });
  return {
    fd,
    // A worker blocked in read(2) is only marked for termination; the thread
    // leaves at its next request or when the connection ends, and process exit
    // does not wait for it.
    stop: () => end({ code: "stopped", errno: 0 }),
  };
}

/**
 * A thread that writes notifications (NOTIFY_INVAL_ENTRY, NOTIFY_INVAL_INODE).
 * Such a write can block: the kernel takes the directory's or the inode's lock
 * to apply it, and a process holding that lock may be waiting for a reply
 * only the main thread can send. Written from the main thread, that is a
 * deadlock; from this worker it is only a wait.
 */
export interface Notifier {
  write(message: Uint8Array): Promise<WriteResult>;
  stop(): void;
}

const notifierSource = `
const fs = require("node:fs");
let fd = -1;
onmessage = (ev) => {
  const m = ev.data;
  if (m.fd !== undefined) { fd = m.fd; return; }
  let result = "ok";
  try { fs.writeSync(fd, new Uint8Array(m.message)); }
  catch (e) { result = e.code === "ENOENT" ? "interrupted" : "gone"; }
  postMessage({ id: m.id, result });
};
`;
let notifierUrl: string | undefined;

export function startNotifier(fd: number): Notifier {
  notifierUrl ??= URL.createObjectURL(new Blob([notifierSource], { type: "application/javascript" }));
  const worker = new Worker(notifierUrl);
  // A notifier must not keep the process alive on its own.
  (worker as unknown as { unref?: () => void }).unref?.();
  const waiting = new Map<number, (r: WriteResult) => void>();
  let next = 1;
  let stopped = false;
  worker.onmessage = (ev: MessageEvent) => {
    const { id, result } = ev.data as { id: number; result: WriteResult };
    waiting.get(id)?.(result);
    waiting.delete(id);
  };
  worker.postMessage({ fd });
  return {
    write(message: Uint8Array): Promise<WriteResult> {
      if (stopped) return Promise.resolve("gone");
      const id = next++;
      const copy = message.slice().buffer;
      return new Promise((resolve) => {
        waiting.set(id, resolve);
        worker.postMessage({ id, message: copy }, [copy]);
      });
    },
    stop() {
      stopped = true;
      worker.terminate();
      for (const resolve of waiting.values()) resolve("gone");
      waiting.clear();
    },
  };
}
