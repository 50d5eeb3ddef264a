// The compiled executable's entry point. `--version` is answered before the
// rest of the CLI is loaded: evaluating its modules (postgres.js, pino, yaml,
// commander, ours) costs about 50 ms, a hello-world Bun binary under 10.
import { VERSION } from "../version.ts";

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === "--version" || args[0] === "-V")) {
  process.stdout.write(`${VERSION}\n`);
  process.exit(0);
}
const { main } = await import("./main.ts");
process.exit(await main(args));
