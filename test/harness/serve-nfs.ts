// `pgfiles serve-nfs --json` as a child process: waits for the line that says
// where it serves, then keeps reading its stdout into `lines`.
import { cliCommand, type CliEnv } from "./cli.ts";

export interface Serving {
  host: string;
  port: number;
  exportPath: string;
  pid: number;
  prefix: string;
}

export async function serveNfs(env: CliEnv): Promise<{ info: Serving; child: ReturnType<typeof Bun.spawn>; lines: string[] }> {
  const child = Bun.spawn({ cmd: [...cliCommand(), "serve-nfs", "--json"], env: env as Record<string, string>, stdout: "pipe", stderr: "pipe" });
  const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
  let text = "";
  const deadline = Date.now() + 20_000;
  while (!text.includes("\n")) {
    if (Date.now() > deadline) throw new Error("serve-nfs did not say where it serves within 20 s");
    const { value, done } = await reader.read();
    if (done) throw new Error(`serve-nfs exited: ${await new Response(child.stderr as ReadableStream).text()}`);
    text += new TextDecoder().decode(value);
  }
  const lines: string[] = [];
  void (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      lines.push(new TextDecoder().decode(value));
    }
  })();
  return { info: JSON.parse(text.split("\n")[0]) as Serving, child, lines };
}
