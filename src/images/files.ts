/**
 * Small file helpers of the image builders (cache manifests and pointers).
 */
import { readFileSync, statSync } from 'node:fs';

/** The parsed JSON of `path`, or undefined when it is missing or not JSON. No shape check. */
export function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** True when `path` is (or links to) a regular file. */
export function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
