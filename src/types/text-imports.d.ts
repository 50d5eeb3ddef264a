// Files imported `with { type: "text" }` (embedded into the compiled binary).
declare module "*.sql" {
  const text: string;
  export default text;
}
