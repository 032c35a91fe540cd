// Types the Worker's JSDoc needs beyond @cloudflare/workers-types.

// generated/bundle.json is a Text module (wrangler.toml [[rules]], dev.mjs): its text.
declare module "*.json" {
  const text: string;
  export default text;
}

// JSON.parse source text access (ES2025, in workerd): a raw JSON value for JSON.stringify.
interface JSON {
  rawJSON(text: string): unknown;
  isRawJSON(value: unknown): boolean;
}
