/**
 * SQLocal's worker (sqlocal/dist/worker.js, which its package does not export), bundled by esbuild
 * into build/sqlocal/worker.js: the `opfs` driver and the processor, wired to this worker's
 * messages. opfs-proxy.js comes first: see there.
 */
import './opfs-proxy.js';
import { SQLiteOpfsDriver, SQLocalProcessor } from 'sqlocal';

const processor = new SQLocalProcessor(new SQLiteOpfsDriver());
self.onmessage = (message) => {
  processor.postMessage(message);
};
processor.onmessage = (message, transfer) => {
  self.postMessage(message, transfer);
};
