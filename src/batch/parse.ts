// The `pgfiles batch` line format (docs/batch.md). One operation per line:
//
//   put PATH TEXT            body is TEXT (UTF-8)
//   put-base64 PATH BASE64   body is the decoded bytes
//   put-file PATH LOCAL      body is the local file's contents
//   delete PATH              tombstone for a file
//   mkdir PATH               directory marker
//   restore PATH VERSION     new latest version with VERSION's content
//   copy SRC DST             DST gets SRC's latest content (copied inside Postgres)
//   tag PATH NAME=VALUE...   new version with these tags set
//   untag PATH NAME...       new version without these tags
//
// A token is a bare word (no spaces, not starting with a quote) or a JSON string
// literal in double quotes, so any name or text can be written: "a b\n".
// Blank lines and lines starting with # are ignored.

export type BatchOp =
  | { op: "put"; line: number; path: string; body: { text: string } | { base64: Buffer } | { file: string } }
  | { op: "delete"; line: number; path: string }
  | { op: "mkdir"; line: number; path: string }
  | { op: "restore"; line: number; path: string; version: number }
  | { op: "copy"; line: number; path: string; src: string }
  | { op: "tag"; line: number; path: string; tags: Record<string, string | null> };

export class BatchSyntaxError extends Error {
  constructor(readonly line: number, message: string) {
    super(`line ${line}: ${message}`);
  }
}

const ARITY: Record<string, [number, number]> = {
  put: [2, 2], "put-base64": [2, 2], "put-file": [2, 2], delete: [1, 1], mkdir: [1, 1],
  restore: [2, 2], copy: [2, 2], tag: [2, Infinity], untag: [2, Infinity],
};

export function tokenize(text: string, line: number): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === " " || c === "\t" || c === "\r") {
      i++;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      if (j >= text.length) throw new BatchSyntaxError(line, "a quoted string is not closed.");
      try {
        out.push(JSON.parse(text.slice(i, j + 1)) as string);
      } catch {
        throw new BatchSyntaxError(line, `bad escape in the quoted string ${text.slice(i, j + 1)}.`);
      }
      i = j + 1;
      if (i < text.length && !/[ \t\r]/.test(text[i])) throw new BatchSyntaxError(line, "a quoted string must be followed by a space.");
      continue;
    }
    let j = i;
    while (j < text.length && !/[ \t\r]/.test(text[j])) j++;
    out.push(text.slice(i, j));
    i = j;
  }
  return out;
}

export function parseBatch(input: string): BatchOp[] {
  const ops: BatchOp[] = [];
  const lines = input.split("\n");
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  lines.forEach((text, idx) => {
    const line = idx + 1;
    const t = tokenize(text, line);
    if (t.length === 0 || t[0].startsWith("#")) return;
    const [verb, ...args] = t;
    const arity = ARITY[verb];
    if (!arity) {
      throw new BatchSyntaxError(line, `unknown operation ${JSON.stringify(verb)}; use put, put-base64, put-file, delete, mkdir, restore, copy, tag or untag.`);
    }
    if (args.length < arity[0] || args.length > arity[1]) {
      const want = arity[1] === Infinity ? `at least ${arity[0]}` : String(arity[0]);
      throw new BatchSyntaxError(line, `${verb} takes ${want} argument${arity[0] === 1 ? "" : "s"}, got ${args.length} (quote names or text that contain spaces).`);
    }
    const path = args[0];
    switch (verb) {
      case "put":
        ops.push({ op: "put", line, path, body: { text: args[1] } });
        break;
      case "put-base64": {
        const b64 = args[1];
        if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) {
          throw new BatchSyntaxError(line, "the body is not valid base64.");
        }
        ops.push({ op: "put", line, path, body: { base64: Buffer.from(b64, "base64") } });
        break;
      }
      case "put-file":
        ops.push({ op: "put", line, path, body: { file: args[1] } });
        break;
      case "delete":
        ops.push({ op: "delete", line, path });
        break;
      case "mkdir":
        ops.push({ op: "mkdir", line, path });
        break;
      case "restore": {
        if (!/^[1-9]\d{0,15}$/.test(args[1])) throw new BatchSyntaxError(line, `the version ${JSON.stringify(args[1])} is not a positive whole number.`);
        ops.push({ op: "restore", line, path, version: Number(args[1]) });
        break;
      }
      case "copy":
        ops.push({ op: "copy", line, path: args[1], src: args[0] });
        break;
      case "tag":
      case "untag": {
        const tags: Record<string, string | null> = {};
        for (const a of args.slice(1)) {
          if (verb === "tag") {
            const eq = a.indexOf("=");
            if (eq <= 0) throw new BatchSyntaxError(line, `the tag ${JSON.stringify(a)} is not NAME=VALUE.`);
            tags[a.slice(0, eq)] = a.slice(eq + 1);
          } else {
            if (a === "") throw new BatchSyntaxError(line, "a tag name cannot be empty.");
            tags[a] = null;
          }
        }
        ops.push({ op: "tag", line, path, tags });
        break;
      }
    }
  });
  return ops;
}
