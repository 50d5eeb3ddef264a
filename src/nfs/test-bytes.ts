// Helpers for the nfs/ unit tests only (nothing in the server imports this):
// bytes written out by hand, and a guard proving a decoder allocates nothing.

/** Bytes from hex, with any whitespace ignored so a message can be laid out word by word. */
export function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ""), "hex");
}

/**
 * Runs `f` with Buffer's allocating functions replaced by ones that throw, so
 * a decoder that allocates for a hostile length fails the test. Build the
 * input before calling.
 */
export function withoutAllocation<T>(f: () => T): T {
  const saved = { alloc: Buffer.alloc, allocUnsafe: Buffer.allocUnsafe, allocUnsafeSlow: Buffer.allocUnsafeSlow, from: Buffer.from };
  const refuse = (name: string) => (size: unknown) => {
    throw new Error(`${name}(${typeof size === "number" ? size : "..."}) called while decoding hostile input`);
  };
  Object.assign(Buffer, {
    alloc: refuse("Buffer.alloc"),
    allocUnsafe: refuse("Buffer.allocUnsafe"),
    allocUnsafeSlow: refuse("Buffer.allocUnsafeSlow"),
    from: refuse("Buffer.from"),
  });
  try {
    return f();
  } finally {
    Object.assign(Buffer, saved);
  }
}
