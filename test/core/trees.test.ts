/**
 * Unit tests of the arena, the copy-on-write B+tree and the radix trie, against plain sorted arrays and maps,
 * with seeded random operations; old roots must keep reading their own revision (snapshot isolation).
 */
import test, { type ExecutionContext } from 'ava';
import { ArenaAllocator, ArenaView, sizeClassBytes } from '../../core/arena.js';
import {
  compareTaskId, nodeBytes, TreeCursor, TreeKey, TreeShape, TreeWriter, treeBuild, treeFind, treeNodes,
  type WriteContext,
} from '../../core/btree.js';
import { RadixRoot, radixBuild, radixFanout, radixGet, radixSet, radixNodeBytes } from '../../core/radix.js';

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function newContext(bytes = 1 << 20, bytesMax = 256 << 20): WriteContext {
  const sab = new SharedArrayBuffer(bytes, { maxByteLength: bytesMax });
  const view = new ArenaView(sab);
  return { view, allocator: new ArenaAllocator(view, bytesMax), epochBuilding: 1 };
}

function collect(context: WriteContext, shape: TreeShape, root: number): number[][] {
  const cursor = new TreeCursor(context.view, shape);
  const out: number[][] = [];
  for (let ok = cursor.seek(root, null); ok; ok = cursor.next()) {
    const entry: number[] = [];
    for (let i = 0; i < shape.keyWords; i++) entry.push(cursor.keyWord(i));
    for (let i = 0; i < shape.valueWords; i++) entry.push(cursor.value(i));
    out.push(entry);
  }
  return out;
}

function compareArrays(a: number[], b: number[], words: number): number {
  for (let i = 0; i < words; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

for (const seed of [1, 2, 3]) {
  test(`btree matches a sorted array under random inserts and removes (seed ${seed})`, (t) => {
    const random = mulberry32(seed);
    const context = newContext();
    const shape = new TreeShape(2, 1);
    const writer = new TreeWriter();
    const key = new TreeKey(2);
    let root = 0;
    const model = new Map<string, number[]>();
    const snapshots: { root: number; entries: number[][] }[] = [];
    for (let step = 0; step < 6000; step++) {
      if (step % 500 === 0) {
        context.epochBuilding++;
        snapshots.push({ root, entries: [...model.values()].sort((a, b) => compareArrays(a, b, 2)) });
      }
      const a = Math.floor(random() * 20);
      const b = Math.floor(random() * 200);
      key.words[0] = a;
      key.words[1] = b;
      const id = `${a}/${b}`;
      if (random() < 0.6) {
        const value = Math.floor(random() * 1e9);
        root = writer.insert(context, shape, root, key, [value]);
        t.is(writer.replaced, model.has(id), `seed ${seed} step ${step}`);
        model.set(id, [a, b, value]);
      } else {
        root = writer.remove(context, shape, root, key);
        t.is(writer.removed, model.has(id), `seed ${seed} step ${step}`);
        model.delete(id);
      }
      const found = treeFind(context.view, shape, root, key);
      t.is(found >= 0, model.has(id));
    }
    const expected = [...model.values()].sort((a, b) => compareArrays(a, b, 2));
    t.deepEqual(collect(context, shape, root), expected);
    // Old roots still read their own state: nothing reachable from them was changed in place.
    for (const snapshot of snapshots) t.deepEqual(collect(context, shape, snapshot.root), snapshot.entries);
  });
}

test('btree: removing everything leaves an empty tree and frees nodes built in the same epoch', (t) => {
  const context = newContext();
  const shape = new TreeShape(1, 0);
  const writer = new TreeWriter();
  const key = new TreeKey(1);
  let root = 0;
  for (let i = 0; i < 5000; i++) {
    key.words[0] = (i * 7919) % 5000;
    root = writer.insert(context, shape, root, key, []);
  }
  let nodes = 0;
  treeNodes(context.view, shape, root, () => nodes++);
  t.true(nodes > 10);
  for (let i = 0; i < 5000; i++) {
    key.words[0] = i;
    root = writer.remove(context, shape, root, key);
    t.true(writer.removed);
  }
  t.is(root, 0);
  t.is(context.allocator.bytesAllocated, 0);
});

test('btree: seek gives the first entry at or after a key, and prefix scans work', (t) => {
  const context = newContext();
  const shape = new TreeShape(3, 0);
  const writer = new TreeWriter();
  const key = new TreeKey(3);
  let root = 0;
  for (let a = 1; a <= 30; a++) for (let b = 1; b <= 30; b++) {
    key.words.set([a, b, a * b]);
    root = writer.insert(context, shape, root, key, []);
  }
  const cursor = new TreeCursor(context.view, shape);
  key.words.set([7, 0, 0]);
  let count = 0;
  for (let ok = cursor.seek(root, key); ok && cursor.keyWord(0) === 7; ok = cursor.next()) {
    t.is(cursor.keyWord(2), 7 * cursor.keyWord(1));
    count++;
  }
  t.is(count, 30);
  key.words.set([31, 0, 0]);
  t.false(cursor.seek(root, key));
});

test('btree in task id mode orders by the whole string, past equal 8-byte prefixes', (t) => {
  const context = newContext();
  const shape = new TreeShape(3, 1, compareTaskId);
  const writer = new TreeWriter();
  const key = new TreeKey(3);
  const ids: string[] = [];
  for (let i = 0; i < 2000; i++) ids.push(`1764000000000-role-${i % 7}-job-${(i * 31) % 97}-${i}`);
  ids.push('a', 'ab', 'abcdefgh', 'abcdefghi', 'abcdefgh\u00e9');
  let root = 0;
  const blobs = new Map<string, number>();
  ids.forEach((id, row) => {
    const bytes = Buffer.from(id, 'utf8');
    const blob = context.allocator.alloc(4 + bytes.length);
    context.view.u32[blob >>> 2] = bytes.length;
    context.view.u8.set(bytes, blob + 4);
    blobs.set(id, blob);
    key.setTaskId(bytes, blob);
    root = writer.insert(context, shape, root, key, [row]);
  });
  const cursor = new TreeCursor(context.view, shape);
  const order: string[] = [];
  for (let ok = cursor.seek(root, null); ok; ok = cursor.next()) order.push(context.view.readString(cursor.keyWord(2)));
  const expected = [...ids].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  t.deepEqual(order, expected);
  for (const [row, id] of ids.entries()) {
    key.setTaskId(Buffer.from(id, 'utf8'), 0);
    const at = treeFind(context.view, shape, root, key);
    t.true(at >= 0);
    t.is(context.view.u32[at + 3], row);
  }
  key.setTaskId(Buffer.from('abcdefgh!', 'utf8'), 0);
  t.is(treeFind(context.view, shape, root, key), -1);
});

test('radix trie maps dense indexes, grows its depth, and keeps old roots intact', (t) => {
  const context = newContext();
  const root = new RadixRoot();
  const random = mulberry32(9);
  const model = new Map<number, number>();
  let old = { node: 0, depth: 0, model: new Map<number, number>() };
  for (let step = 0; step < 20000; step++) {
    if (step === 10000) {
      old = { node: root.node, depth: root.depth, model: new Map(model) };
      context.epochBuilding++;
    }
    const index = Math.floor(random() * (step < 5000 ? 1000 : 200000));
    const value = Math.floor(random() * 1e9) + 1;
    radixSet(context, root, index, value);
    model.set(index, value);
  }
  for (const [index, value] of model) t.is(radixGet(context.view, root.node, root.depth, index), value);
  for (const [index, value] of old.model) t.is(radixGet(context.view, old.node, old.depth, index), value);
  t.is(radixGet(context.view, root.node, root.depth, 4_000_000), 0);
  t.true(radixNodeBytes % 8 === 0);
});

test('arena: retired blocks are reused only after the epoch is safe; the SAB grows on demand', (t) => {
  const context = newContext(64 * 1024, 512 << 20);
  const allocator = context.allocator;
  const a = allocator.alloc(100);
  allocator.retire(a, 100, 5);
  t.is(allocator.reclaim(4), 0);
  const b = allocator.alloc(100);
  t.not(b, a);
  t.is(allocator.reclaim(5), 1);
  t.is(allocator.alloc(100), a);
  t.is(sizeClassBytes(1), 8);
  t.is(sizeClassBytes(257), 320);
  t.is(sizeClassBytes(5000), 8192);
  const before = context.view.bytes;
  const big = allocator.alloc(nodeBytes * 1000);
  t.true(context.view.bytes > before);
  context.view.u32[(big + nodeBytes * 1000 - 4) >>> 2] = 7;
  t.is(context.view.u32[(big + nodeBytes * 1000 - 4) >>> 2], 7);
  // Many retirements grow the FIFO without losing order.
  for (let i = 0; i < 10000; i++) allocator.retire(allocator.alloc(16), 16, 10 + i);
  t.is(allocator.reclaim(9), 0);
  t.is(allocator.reclaim(10 + 4999), 5000);
  t.is(allocator.retiredCount(), 5000);
});

test('arena: allocation past the maximum fails with ArenaFullError', (t) => {
  const context = newContext(64 * 1024, 128 * 1024);
  t.throws(() => context.allocator.alloc(256 * 1024), { name: 'ArenaFullError' });
});

test('btree in task id mode: inner keys never point at the blob of a removed id (blobs are reused at once)', (t) => {
  const context = newContext();
  const shape = new TreeShape(3, 1, compareTaskId);
  const writer = new TreeWriter();
  const key = new TreeKey(3);
  const random = mulberry32(11);
  const live = new Map<string, { blob: number; row: number }>();
  let root = 0;
  let next = 0;
  const write = (id: string): number => {
    const bytes = Buffer.from(id, 'utf8');
    const blob = context.allocator.alloc(4 + bytes.length);
    context.view.u32[blob >>> 2] = bytes.length;
    context.view.u8.set(bytes, blob + 4);
    return blob;
  };
  for (let step = 0; step < 20000; step++) {
    if (live.size < 50 || random() < 0.55) {
      const id = `1764000000000-role-${next % 13}-job-${(next * 7) % 31}-${next}`;
      next++;
      const blob = write(id);
      key.setTaskId(Buffer.from(id, 'utf8'), blob);
      root = writer.insert(context, shape, root, key, [next]);
      live.set(id, { blob, row: next });
    } else {
      const ids = [...live.keys()];
      const id = ids[Math.floor(random() * ids.length)]!;
      const { blob } = live.get(id)!;
      key.setTaskId(Buffer.from(id, 'utf8'), 0);
      root = writer.remove(context, shape, root, key);
      t.true(writer.removed);
      live.delete(id);
      // The blob is freed and reused at once, as the writer does once no reader pins the old revision.
      context.view.u8.fill(0x7a, blob + 4, blob + 4 + context.view.u32[blob >>> 2]!);
      context.allocator.freeNow(blob, 4 + context.view.u32[blob >>> 2]!);
    }
    if (step % 1000 === 999) {
      context.epochBuilding++;
      for (const [id, { row }] of live) {
        key.setTaskId(Buffer.from(id, 'utf8'), 0);
        const at = treeFind(context.view, shape, root, key);
        t.true(at >= 0, `step ${step}: ${id} not found`);
        if (at >= 0) t.is(context.view.u32[at + 3], row);
      }
    }
  }
});

// --------------------------------------------------------------------------------------------------------------
// Bulk builds (a snapshot's load): the same content as inserting one by one, and every structural invariant.

/** Checks a tree's structure; returns its depth. Fails the test on the first broken invariant. */
function checkStructure(t: ExecutionContext, context: WriteContext, shape: TreeShape, root: number,
  compare: (a: number, b: number) => number): number {
  const u32 = context.view.u32;
  const headerWords = 4;
  let leafDepth = -1;
  let previous = -1; // word index of the previous leaf key, in order
  // Returns the word index of the subtree's smallest key.
  const visit = (node: number, depth: number): number => {
    const count = u32[node >>> 2]!;
    const leaf = u32[(node >>> 2) + 1] === 1;
    t.is(context.view.f64[(node >>> 3) + 1], context.epochBuilding, 'every node has the building epoch');
    t.true(count >= 1 && count <= (leaf ? shape.leafCapacity : shape.innerCapacity), `node of ${count} entries`);
    if (leaf) {
      if (leafDepth < 0) leafDepth = depth;
      t.is(depth, leafDepth, 'every leaf at one depth');
      for (let i = 0; i < count; i++) {
        const at = (node >>> 2) + headerWords + i * shape.leafEntryWords;
        if (previous >= 0) t.true(compare(previous, at) < 0, 'leaf keys strictly increasing');
        previous = at;
      }
      return (node >>> 2) + headerWords;
    }
    if (node === root) t.true(count >= 2, 'an inner root has two children or more');
    let first = -1;
    for (let i = 0; i < count; i++) {
      const at = (node >>> 2) + headerWords + i * shape.innerEntryWords;
      const smallest = visit(u32[at + shape.keyWords]!, depth + 1);
      for (let k = 0; k < shape.keyWords; k++) t.is(u32[at + k], u32[smallest + k], 'inner key = smallest of child');
      if (i === 0) first = smallest;
    }
    return first;
  };
  if (root === 0) return 0;
  visit(root, 1);
  return leafDepth;
}

function compareWordsAt(context: WriteContext, words: number): (a: number, b: number) => number {
  return (a, b) => {
    const u32 = context.view.u32;
    for (let i = 0; i < words; i++) if (u32[a + i] !== u32[b + i]) return u32[a + i]! < u32[b + i]! ? -1 : 1;
    return 0;
  };
}

/** Distinct random entries (key words then value words), sorted by key. */
function randomEntries(random: () => number, shape: TreeShape, count: number, range: number): number[][] {
  const seen = new Map<string, number[]>();
  while (seen.size < count) {
    const entry: number[] = [];
    for (let i = 0; i < shape.keyWords; i++) entry.push(Math.floor(random() * range));
    const id = entry.join('/');
    for (let i = 0; i < shape.valueWords; i++) entry.push(Math.floor(random() * 0xffffffff));
    seen.set(id, entry);
  }
  return [...seen.values()].sort((a, b) => compareArrays(a, b, shape.keyWords));
}

const buildShapes: [string, TreeShape][] = [
  ['1 key word', new TreeShape(1, 0)], ['2 key words, 1 value', new TreeShape(2, 1)],
  ['4 key words', new TreeShape(4, 0)], ['3 key words, 1 value', new TreeShape(3, 1)],
];

for (const [name, shape] of buildShapes) {
  test(`treeBuild equals inserting one by one (${name}), for sizes from empty to several levels`, (t) => {
    const random = mulberry32(shape.keyWords * 100 + shape.valueWords);
    const two = shape.leafCapacity * shape.innerCapacity;
    const sizes = [0, 1, 2, shape.leafCapacity - 1, shape.leafCapacity, shape.leafCapacity + 1, 2 * shape.leafCapacity,
      two - 1, two, two + 1, 5000, 40_000];
    for (const size of sizes) {
      const context = newContext();
      const entries = randomEntries(random, shape, size, size < 100 ? 1000 : 0xffffffff);
      const flat = new Uint32Array(entries.flat());
      const built = treeBuild(context, shape, flat, size);
      const depth = checkStructure(t, context, shape, built, compareWordsAt(context, shape.keyWords));
      t.deepEqual(collect(context, shape, built), entries, `size ${size}: the entries, in order`);
      // The same as inserts one by one, in random order, looked up key by key.
      const writer = new TreeWriter();
      const key = new TreeKey(shape.keyWords);
      let inserted = 0;
      for (const index of entries.map((_, i) => i).sort(() => random() - 0.5)) {
        key.words.set(entries[index]!.slice(0, shape.keyWords));
        inserted = writer.insert(context, shape, inserted, key, entries[index]!.slice(shape.keyWords));
      }
      t.deepEqual(collect(context, shape, inserted), collect(context, shape, built), `size ${size}: as inserted`);
      for (const entry of entries) {
        key.words.set(entry.slice(0, shape.keyWords));
        const at = treeFind(context.view, shape, built, key);
        t.true(at >= 0);
        for (let i = 0; i < shape.valueWords; i++) t.is(context.view.u32[at + shape.keyWords + i], entry[shape.keyWords + i]);
      }
      for (let probe = 0; probe < 200; probe++) {
        for (let i = 0; i < shape.keyWords; i++) key.words[i] = Math.floor(random() * 0xffffffff);
        t.is(treeFind(context.view, shape, built, key) >= 0, treeFind(context.view, shape, inserted, key) >= 0);
      }
      const leaves = Math.ceil(size / shape.leafCapacity);
      const expectedDepth = size === 0 ? 0 : 1 + Math.ceil(Math.log(leaves) / Math.log(shape.innerCapacity) - 1e-9);
      t.is(depth, expectedDepth, `size ${size}: depth`);
    }
  });
}

test('treeBuild: a built tree goes on under inserts and removes in later epochs, old roots intact', (t) => {
  const random = mulberry32(77);
  const shape = new TreeShape(2, 1);
  const context = newContext();
  const entries = randomEntries(random, shape, 20_000, 5000);
  let root = treeBuild(context, shape, new Uint32Array(entries.flat()), entries.length);
  const model = new Map(entries.map((entry) => [`${entry[0]}/${entry[1]}`, entry]));
  const built = { root, entries: collect(context, shape, root) };
  const writer = new TreeWriter();
  const key = new TreeKey(2);
  for (let step = 0; step < 20_000; step++) {
    if (step % 2000 === 0) context.epochBuilding++;
    const a = Math.floor(random() * 5000);
    const b = Math.floor(random() * 5000);
    key.words[0] = a;
    key.words[1] = b;
    const id = `${a}/${b}`;
    if (random() < 0.5) {
      root = writer.insert(context, shape, root, key, [step]);
      t.is(writer.replaced, model.has(id));
      model.set(id, [a, b, step]);
    } else {
      root = writer.remove(context, shape, root, key);
      t.is(writer.removed, model.has(id));
      model.delete(id);
    }
  }
  t.deepEqual(collect(context, shape, root), [...model.values()].sort((x, y) => compareArrays(x, y, 2)));
  t.deepEqual(collect(context, shape, built.root), built.entries, 'the built revision reads as built');
});

test('treeBuild in task id mode: ids with equal 8-byte prefixes, found by their whole strings', (t) => {
  const context = newContext();
  const shape = new TreeShape(3, 1, compareTaskId);
  const random = mulberry32(5);
  const ids = new Set<string>(['a', 'ab', 'abcdefgh', 'abcdefghi', 'abcdefgh\u00e9']);
  while (ids.size < 30_000) ids.add(`1764000000000-role-${Math.floor(random() * 50)}-${Math.floor(random() * 1e6)}`);
  const sorted = [...ids].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const key = new TreeKey(3);
  const flat = new Uint32Array(sorted.length * 4);
  sorted.forEach((id, row) => {
    const bytes = Buffer.from(id, 'utf8');
    const blob = context.allocator.alloc(4 + bytes.length);
    context.view.u32[blob >>> 2] = bytes.length;
    context.view.u8.set(bytes, blob + 4);
    key.setTaskId(bytes, blob);
    flat.set([key.words[0]!, key.words[1]!, blob, row], row * 4);
  });
  const root = treeBuild(context, shape, flat, sorted.length);
  const compareIds = (a: number, b: number): number => Buffer.compare(
    Buffer.from(context.view.readString(context.view.u32[a + 2]!)), Buffer.from(context.view.readString(context.view.u32[b + 2]!)));
  t.true(checkStructure(t, context, shape, root, compareIds) >= 3, 'several levels');
  sorted.forEach((id, row) => {
    key.setTaskId(Buffer.from(id, 'utf8'), 0);
    const at = treeFind(context.view, shape, root, key);
    t.true(at >= 0, id);
    t.is(context.view.u32[at + 3], row);
  });
  key.setTaskId(Buffer.from('abcdefgh!', 'utf8'), 0);
  t.is(treeFind(context.view, shape, root, key), -1);
});

test('treeBuild refuses keys out of order (an assertion: the caller checks its input first)', (t) => {
  const context = newContext();
  const shape = new TreeShape(1, 0);
  t.throws(() => treeBuild(context, shape, new Uint32Array([1, 3, 2]), 3), { message: /keys in order/ });
  t.throws(() => treeBuild(context, shape, new Uint32Array([1, 1]), 2), { message: /keys in order/ });
});

/** Every node of a trie, with its level (0 = leaves). */
function radixNodes(context: WriteContext, node: number, depth: number, out: [number, number][] = []): [number, number][] {
  if (depth === 0) return out;
  out.push([node, depth - 1]);
  if (depth > 1) {
    for (let i = 0; i < radixFanout; i++) {
      const child = context.view.u32[(node >>> 2) + 2 + i]!;
      if (child !== 0) radixNodes(context, child, depth - 1, out);
    }
  }
  return out;
}

test('radixBuild equals radixSet of every index in order: depth, nodes, values, epochs', (t) => {
  const random = mulberry32(21);
  for (const size of [0, 1, 2, 31, 32, 33, 1023, 1024, 1025, 32 * 1024 + 1, 100_000]) {
    const context = newContext();
    context.epochBuilding = 3;
    const values = new Uint32Array(size);
    // Some zero values too: their leaf nodes exist all the same.
    for (let i = 0; i < size; i++) values[i] = random() < 0.1 ? 0 : Math.floor(random() * 0xffffffff);
    const built = new RadixRoot();
    radixBuild(context, built, values, size);
    const set = new RadixRoot();
    for (let i = 0; i < size; i++) radixSet(context, set, i, values[i]!);
    t.is(built.depth, set.depth, `size ${size}: depth`);
    for (let i = 0; i < size + 64; i++) {
      t.is(radixGet(context.view, built.node, built.depth, i), radixGet(context.view, set.node, set.depth, i));
    }
    const builtNodes = radixNodes(context, built.node, built.depth);
    t.is(builtNodes.length, radixNodes(context, set.node, set.depth).length, `size ${size}: node count`);
    t.deepEqual(builtNodes.map(([, level]) => level).sort(), radixNodes(context, set.node, set.depth)
      .map(([, level]) => level).sort(), `size ${size}: nodes per level`);
    for (const [node] of builtNodes) t.is(context.view.f64[node >>> 3], 3, 'stamped with the building epoch');
  }
  const context = newContext();
  const root = new RadixRoot();
  radixSet(context, root, 0, 1);
  t.throws(() => radixBuild(context, root, new Uint32Array(1), 1), { message: /only when empty/ });
});
