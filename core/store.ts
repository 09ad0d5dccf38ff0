/**
 * Read access to one revision of the store: the tree shapes of every table and lookups by key.
 * Owner: any thread. The writer reads its working roots with it, a reader the roots of the revision it pinned.
 * Invariants: never writes; every lookup reads only what is reachable from `roots`.
 */
import type { ArenaView } from './arena.js';
import { compareTaskId, TreeCursor, TreeKey, TreeShape, treeFind } from './btree.js';
import * as layout from './layout.js';
import { radixGet } from './radix.js';
import { hashString } from './text.js';

export const taskIdShape = new TreeShape(3, 1, compareTaskId); // (id prefix, id prefix, id blob) -> row
export const jobIndexShape = new TreeShape(4, 0);               // (role, env, name, row)
export const pairShape = new TreeShape(2, 0);                   // (host, row), (status, row), (hash, string id)
export const oneKeyShape = new TreeShape(1, 1);                 // (role) or (host) -> block
export const twoKeyShape = new TreeShape(2, 1);                 // (role, env) -> block
export const threeKeyShape = new TreeShape(3, 1);               // (role, env, name) -> block
export const fourKeyShape = new TreeShape(4, 1);                // (role, env, name, update id) -> record

export class StoreReader {
  readonly view: ArenaView;
  readonly roots: Uint32Array;
  revision = 0;
  private readonly key1 = new TreeKey(1);
  private readonly key2 = new TreeKey(2);
  private readonly key3 = new TreeKey(3);
  private readonly key4 = new TreeKey(4);
  private readonly taskKey = new TreeKey(3);
  readonly cursor: TreeCursor;

  constructor(view: ArenaView, roots: Uint32Array) {
    this.view = view;
    this.roots = roots;
    this.cursor = new TreeCursor(view, pairShape);
  }

  /** The id of an interned string, or 0 if it is not interned (so no record can have it). */
  stringId(value: string): number {
    const hash = hashString(value);
    const cursor = this.cursor;
    this.key2.words[0] = hash;
    this.key2.words[1] = 0;
    for (let ok = cursor.seek(this.roots[layout.rootInternWord]!, this.key2, pairShape);
      ok && cursor.keyWord(0) === hash; ok = cursor.next()) {
      const id = cursor.keyWord(1);
      if (this.stringOf(id) === value) return id;
    }
    return 0;
  }

  stringBlob(id: number): number {
    return radixGet(this.view, this.roots[layout.rootStringsWord]!, this.roots[layout.rootStringsDepthWord]!, id);
  }

  stringOf(id: number): string {
    if (id === 0) return '';
    return this.view.readString(this.stringBlob(id));
  }

  /** The row of a task by its id's UTF-8 bytes, or -1. */
  taskRow(idBytes: Uint8Array): number {
    this.taskKey.setTaskId(idBytes, 0);
    const at = treeFind(this.view, taskIdShape, this.roots[layout.rootTaskIdTreeWord]!, this.taskKey);
    return at < 0 ? -1 : this.view.u32[at + 3]!;
  }

  taskRecord(row: number): number {
    return radixGet(this.view, this.roots[layout.rootRowsWord]!, this.roots[layout.rootRowsDepthWord]!, row);
  }

  configBlob(row: number): number {
    return radixGet(this.view, this.roots[layout.rootConfigsWord]!, this.roots[layout.rootConfigsDepthWord]!, row);
  }

  find1(rootWord: number, a: number): number {
    this.key1.words[0] = a;
    return this.value(oneKeyShape, rootWord, this.key1);
  }

  find2(rootWord: number, a: number, b: number): number {
    this.key2.words[0] = a;
    this.key2.words[1] = b;
    return this.value(twoKeyShape, rootWord, this.key2);
  }

  find3(rootWord: number, a: number, b: number, c: number): number {
    this.key3.words[0] = a;
    this.key3.words[1] = b;
    this.key3.words[2] = c;
    return this.value(threeKeyShape, rootWord, this.key3);
  }

  find4(rootWord: number, a: number, b: number, c: number, d: number): number {
    this.key4.words[0] = a;
    this.key4.words[1] = b;
    this.key4.words[2] = c;
    this.key4.words[3] = d;
    return this.value(fourKeyShape, rootWord, this.key4);
  }

  private value(shape: TreeShape, rootWord: number, key: TreeKey): number {
    const at = treeFind(this.view, shape, this.roots[rootWord]!, key);
    return at < 0 ? 0 : this.view.u32[at + shape.keyWords]!;
  }

  /** A record blob's FlatBuffers bytes (a view into the arena: copy before the pin is released). */
  blobBytes(blob: number): Uint8Array {
    const length = this.view.u32[(blob >>> 2) + layout.blobLengthWord]!;
    return this.view.u8.subarray(blob + layout.blobHeaderBytes, blob + layout.blobHeaderBytes + length);
  }

  blobRevision(blob: number): number {
    return this.view.f64[(blob >>> 3) + layout.blobModRevisionF64]!;
  }

  taskWord(record: number, word: number): number {
    return this.view.u32[(record >>> 2) + word]!;
  }

  taskModRevision(record: number): number {
    return this.view.f64[(record >>> 3) + layout.taskModRevisionF64]!;
  }

  /** Config blob: [u32 length][u32 spare][16 bytes hash][canonical bytes]. */
  configHash(blob: number): Uint8Array {
    return this.view.u8.subarray(blob + 8, blob + 8 + configBlobHashBytes);
  }

  configBytes(blob: number): Uint8Array {
    const length = this.view.u32[blob >>> 2]!;
    return this.view.u8.subarray(blob + configBlobHeaderBytes, blob + configBlobHeaderBytes + length);
  }
}

export const configBlobHashBytes = 16;
export const configBlobHeaderBytes = 8 + configBlobHashBytes;
