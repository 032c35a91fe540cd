// The primary bundle: what `python -m edgesql d1-migrations` generated from the app's
// schema (cloudflare/generated/bundle.json) — the schema document, the server's SQL
// (the same statements the embedded primary runs) and the protocol's limits.

import bundleText from "../generated/bundle.json";

/**
 * @typedef {object} Limits
 * @property {number} version protocol version
 * @property {number} max_request_bytes
 * @property {number} max_page_changes
 * @property {number} max_page_bytes
 * @property {number} max_cells_bytes
 * @property {number} max_pull_limit
 * @property {number} default_pull_limit
 * @property {number} pull_page_bytes
 * @property {number} pull_scan_rows
 * @property {number} max_schema
 * @property {number} max_cursor
 * @property {string} replica_pattern
 * @property {string} key_pattern
 * @property {number} max_position_chars
 */

/**
 * @typedef {object} Bundle
 * @property {number} format
 * @property {number} schema_version
 * @property {string} setup hash of the server setup the migrations installed
 * @property {string} schema_doc served as is at GET /sync/schema
 * @property {{replica: string, register: string, check: string, push: string, pull: string,
 *   snapshot: string, log_end: string, server_hlc: string}} sql
 * @property {Limits} protocol
 * @property {Record<string, string> | null} [access] the access rules' statements (accesssql.py), or null
 */

/** The bundle layout this Worker understands. */
export const BUNDLE_FORMAT = 1;

/**
 * Parse and check a bundle.
 * @param {string | object} raw the bundle: text (a Text module rule) or already parsed JSON
 * @returns {Bundle}
 */
export function loadBundle(raw) {
  const bundle = /** @type {Bundle} */ (typeof raw === "string" ? JSON.parse(raw) : raw);
  if (bundle.format !== BUNDLE_FORMAT) {
    throw new Error(
      `generated/bundle.json has format ${bundle.format}, this Worker reads ${BUNDLE_FORMAT}: ` +
        "regenerate it with the edgesql that matches this Worker (python -m edgesql d1-migrations)",
    );
  }
  return bundle;
}

/** The bundle this Worker was deployed with. */
export const BUNDLE = loadBundle(bundleText);
