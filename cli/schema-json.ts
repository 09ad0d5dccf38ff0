/**
 * JSON for the records of schema.fbs, both ways, for the online commands of the strata command (`get task`,
 * `query --json`, `watch`, `txn`). Owner: the strata process's main thread.
 *
 * The field types come from schema.fbs itself, read once (its tables, structs, enums and unions; the grammar
 * subset strata's schema uses), so the JSON follows the schema without a second hand-written description. The
 * JSON is the object API's (core/fbs/strata.ts): camelCase field names, a union as two fields (`xType` with the
 * member's name, `x` with its table), enums by name, 64-bit integers as numbers (as strings past 2^53), byte
 * vectors as hex. Input also takes schema.fbs's snake_case names, enum numbers and 64-bit integers as strings.
 *
 * Invariants: input is checked field by field against the schema before anything is built from it; every
 * mistake throws JsonInputError naming the JSON path ($.ops[2].tasks[0].status) and what was expected; an
 * unknown field is a mistake (a typo never passes silently). Output leaves out null fields, empty lists and
 * unions that are not set; reading such output back gives the same record.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as flatbuffers from 'flatbuffers';
import * as fbs from '../core/fbs/strata.js';
import { UsageError } from './tool-support.js';

/** A mistake in JSON input, with the path of the value at fault: exit code 2 (usage). */
export class JsonInputError extends UsageError {
  constructor(path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = 'JsonInputError';
  }
}

type Scalar = 'bool' | 'byte' | 'ubyte' | 'short' | 'ushort' | 'int' | 'uint' | 'long' | 'ulong' | 'float' | 'double';

export type FieldType =
  | { kind: 'scalar'; scalar: Scalar }
  | { kind: 'string' }
  | { kind: 'enum'; name: string }
  | { kind: 'union'; name: string }
  | { kind: 'table'; name: string }
  | { kind: 'vector'; element: FieldType; nested: string | null };

export interface FieldModel {
  /** The object API's property (camelCase); a union's type property is `${property}Type`. */
  property: string;
  schemaName: string;
  type: FieldType;
}

export interface TableModel { name: string; struct: boolean; fields: FieldModel[] }

export interface EnumModel {
  name: string;
  union: boolean;
  byName: Map<string, number>;
  byValue: Map<number, string>;
}

export interface SchemaModel { tables: Map<string, TableModel>; enums: Map<string, EnumModel> }

const schemaFile = fileURLToPath(new URL('../../schema.fbs', import.meta.url));

const scalarAliases: Record<string, Scalar> = {
  bool: 'bool', byte: 'byte', int8: 'byte', ubyte: 'ubyte', uint8: 'ubyte', short: 'short', int16: 'short',
  ushort: 'ushort', uint16: 'ushort', int: 'int', int32: 'int', uint: 'uint', uint32: 'uint', long: 'long',
  int64: 'long', ulong: 'ulong', uint64: 'ulong', float: 'float', float32: 'float', double: 'double', float64: 'double',
};

const integerRanges: Partial<Record<Scalar, [number, number]>> = {
  byte: [-128, 127], ubyte: [0, 255], short: [-32768, 32767], ushort: [0, 65535],
  int: [-2147483648, 2147483647], uint: [0, 4294967295],
};

let model: SchemaModel | null = null;

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** The model of schema.fbs (read and parsed on first use). */
export function schemaModel(): SchemaModel {
  if (model === null) model = parseSchema(readFileSync(schemaFile, 'utf8'));
  return model;
}

/** Parses the subset of the FlatBuffers schema language that schema.fbs uses. */
export function parseSchema(source: string): SchemaModel {
  const text = source.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\/\/[^\n]*/g, ' ');
  const tables = new Map<string, TableModel>();
  const enums = new Map<string, EnumModel>();
  const pending: { table: TableModel; body: string }[] = [];
  const block = /\b(enum|union|table|struct)\s+(\w+)\s*(?::\s*\w+\s*)?(?:\([^)]*\)\s*)?\{([^}]*)\}/g;
  for (const match of text.matchAll(block)) {
    const [, kind, name, body] = match as unknown as [string, string, string, string];
    if (kind === 'enum' || kind === 'union') {
      enums.set(name, enumModel(name, kind === 'union', body));
    } else {
      const table: TableModel = { name, struct: kind === 'struct', fields: [] };
      tables.set(name, table);
      pending.push({ table, body });
    }
  }
  for (const { table, body } of pending) table.fields = fieldModels(table.name, body, tables, enums);
  return { tables, enums };
}

function enumModel(name: string, union: boolean, body: string): EnumModel {
  const byName = new Map<string, number>();
  const byValue = new Map<number, string>();
  let next = union ? 1 : 0;
  if (union) {
    byName.set('NONE', 0);
    byValue.set(0, 'NONE');
  }
  for (const item of body.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const [member, value] = item.split('=').map((s) => s.trim()) as [string, string | undefined];
    const number = value === undefined ? next : Number(value);
    if (!Number.isInteger(number)) throw new Error(`schema.fbs: ${name}.${member} has no integer value`);
    byName.set(member, number);
    byValue.set(number, member);
    next = number + 1;
  }
  return { name, union, byName, byValue };
}

function fieldModels(owner: string, body: string, tables: Map<string, TableModel>,
  enums: Map<string, EnumModel>): FieldModel[] {
  const fields: FieldModel[] = [];
  const field = /^(\w+)\s*:\s*(\[\s*\w+\s*\]|\w+)\s*(?:=\s*[^(]+?)?\s*(?:\((.*)\))?$/s;
  for (const declaration of body.split(';').map((s) => s.trim()).filter((s) => s !== '')) {
    const match = field.exec(declaration);
    if (match === null) throw new Error(`schema.fbs: cannot read the field '${declaration}' of ${owner}`);
    const [, name, typeText, attributes] = match as unknown as [string, string, string, string | undefined];
    if (attributes !== undefined && /\bdeprecated\b/.test(attributes)) continue;
    const nested = attributes === undefined ? null : (/nested_flatbuffer\s*:\s*"(\w+)"/.exec(attributes)?.[1] ?? null);
    const vector = typeText.startsWith('[');
    const base = resolveType(owner, typeText.replace(/[[\]\s]/g, ''), tables, enums);
    fields.push({ property: camel(name), schemaName: name,
      type: vector ? { kind: 'vector', element: base, nested } : base });
  }
  return fields;
}

function resolveType(owner: string, name: string, tables: Map<string, TableModel>,
  enums: Map<string, EnumModel>): FieldType {
  const scalar = scalarAliases[name];
  if (scalar !== undefined) return { kind: 'scalar', scalar };
  if (name === 'string') return { kind: 'string' };
  const known = enums.get(name);
  if (known !== undefined) return known.union ? { kind: 'union', name } : { kind: 'enum', name };
  if (tables.has(name)) return { kind: 'table', name };
  throw new Error(`schema.fbs: ${owner} names the unknown type ${name}`);
}

function tableOf(name: string): TableModel {
  const table = schemaModel().tables.get(name);
  if (table === undefined) throw new Error(`schema.fbs has no table ${name}`);
  return table;
}

function enumOf(name: string): EnumModel {
  const found = schemaModel().enums.get(name);
  if (found === undefined) throw new Error(`schema.fbs has no enum ${name}`);
  return found;
}

/** The object API class of a table or struct (`TaskConfigT`). */
function objectClass(name: string): new () => object {
  const type = (fbs as unknown as Record<string, unknown>)[`${name}T`];
  if (typeof type !== 'function') throw new Error(`core/fbs/strata.ts has no ${name}T (run npm run gen)`);
  return type as new () => object;
}

/** An enum value by its name (any case) or number; null if the enum has no such member. */
export function enumValue(enumName: string, given: string | number): number | null {
  const known = enumOf(enumName);
  if (typeof given === 'number') return known.byValue.has(given) ? given : null;
  const exact = known.byName.get(given);
  if (exact !== undefined) return exact;
  for (const [name, value] of known.byName) if (name.toLowerCase() === given.toLowerCase()) return value;
  return null;
}

export function enumNames(enumName: string): string[] {
  return [...enumOf(enumName).byName.keys()];
}

export function enumName(enumName: string, value: number): string | number {
  return enumOf(enumName).byValue.get(value) ?? value;
}

// --- output -------------------------------------------------------------------------------------------------

const textDecoder = new TextDecoder();

function hex(bytes: ArrayLike<number>): string {
  return Buffer.from(Uint8Array.from(bytes as ArrayLike<number>)).toString('hex');
}

/** A 64-bit integer as JSON: a number when it is exact, else its decimal string. */
export function longJson(value: bigint): number | string {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : String(value);
}

/** The JSON of an object-API record of table `table` (see the module comment for the conventions). */
export function recordJson(table: string, record: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const values = record as Record<string, unknown>;
  if (table === 'StoredConfig') {
    const stored = record as fbs.StoredConfigT;
    out.hash = hex(stored.hash);
    out.config = nestedJson('TaskConfig', stored.bytes);
    return out;
  }
  for (const field of tableOf(table).fields) {
    const value = values[field.property];
    if (field.type.kind === 'union') {
      const type = values[`${field.property}Type`] as number;
      if (type === 0 || value === null || value === undefined) continue;
      const member = enumName(field.type.name, type);
      out[`${field.property}Type`] = member;
      out[field.property] = recordJson(String(member), value as object);
      continue;
    }
    if (value === null || value === undefined) continue;
    if (Array.isArray(value) && value.length === 0) continue;
    out[field.property] = valueJson(field.type, value);
  }
  return out;
}

function valueJson(type: FieldType, value: unknown): unknown {
  switch (type.kind) {
    case 'scalar': return typeof value === 'bigint' ? longJson(value) : value;
    case 'string': return value instanceof Uint8Array ? textDecoder.decode(value) : value;
    case 'enum': return enumName(type.name, value as number);
    case 'table': return recordJson(type.name, value as object);
    case 'union': throw new Error('a union is written by its table');
    case 'vector': {
      const items = value as unknown[];
      if (type.element.kind === 'scalar' && type.element.scalar === 'ubyte') {
        return type.nested === null ? hex(items as number[]) : nestedJson(type.nested, items as number[]);
      }
      return items.map((item) => valueJson(type.element, item));
    }
  }
}

/** The JSON of a nested FlatBuffer (`[ubyte] (nested_flatbuffer: "X")`), decoded. */
function nestedJson(table: string, bytes: ArrayLike<number>): Record<string, unknown> {
  const reader = (fbs as unknown as Record<string, Record<string, unknown>>)[table];
  const getRoot = reader?.[`getRootAs${table}`] as ((bb: flatbuffers.ByteBuffer) => { unpack(): object }) | undefined;
  if (getRoot === undefined) throw new Error(`core/fbs/strata.ts has no ${table}`);
  return recordJson(table, getRoot(new flatbuffers.ByteBuffer(Uint8Array.from(bytes))).unpack());
}

// --- input --------------------------------------------------------------------------------------------------

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  const text = JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 40)}...` : text;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An object-API record of table `table` from its JSON; `skip` names keys the caller reads itself. */
export function recordFromJson<T extends object>(table: string, json: unknown, path: string,
  skip: readonly string[] = []): T {
  if (!isObject(json)) throw new JsonInputError(path, `expected an object (a ${table}), got ${describe(json)}`);
  const model = tableOf(table);
  const record = new (objectClass(table))() as Record<string, unknown>;
  const byKey = new Map<string, { field: FieldModel; unionType: boolean }>();
  for (const field of model.fields) {
    byKey.set(field.property, { field, unionType: false });
    byKey.set(field.schemaName, { field, unionType: false });
    if (field.type.kind === 'union') {
      byKey.set(`${field.property}Type`, { field, unionType: true });
      byKey.set(`${field.schemaName}_type`, { field, unionType: true });
    }
  }
  for (const key of Object.keys(json)) {
    if (skip.includes(key)) continue;
    const known = byKey.get(key);
    if (known === undefined) {
      const names = model.fields.flatMap((f) => (f.type.kind === 'union' ? [`${f.property}Type`, f.property] : [f.property]));
      throw new JsonInputError(`${path}.${key}`, `${table} has no such field (fields: ${names.join(', ')})`);
    }
    const { field } = known;
    if (field.type.kind === 'union') {
      if (!known.unionType) continue; // read with its type below
      const [type, value] = unionFromJson(field, json, path);
      record[`${field.property}Type`] = type;
      record[field.property] = value;
      continue;
    }
    record[field.property] = valueFromJson(field.type, json[key], `${path}.${key}`);
  }
  for (const field of model.fields) {
    if (field.type.kind !== 'union') continue;
    const given = [field.property, field.schemaName].find((k) => k in json && !skip.includes(k));
    const typed = [`${field.property}Type`, `${field.schemaName}_type`].some((k) => k in json);
    if (given !== undefined && !typed && json[given] !== null) {
      throw new JsonInputError(`${path}.${given}`, `give ${field.property}Type too (one of ${enumNames(field.type.name).slice(1).join(', ')})`);
    }
  }
  return record as T;
}

function unionFromJson(field: FieldModel, json: Record<string, unknown>, path: string): [number, object | null] {
  const union = (field.type as { name: string }).name;
  const typeKey = `${field.property}Type` in json ? `${field.property}Type` : `${field.schemaName}_type`;
  const typeJson = json[typeKey];
  const type = typeof typeJson === 'string' || typeof typeJson === 'number' ? enumValue(union, typeJson) : null;
  if (type === null) {
    throw new JsonInputError(`${path}.${typeKey}`, `expected one of ${enumNames(union).join(', ')}, got ${describe(typeJson)}`);
  }
  const valueKey = field.property in json ? field.property : field.schemaName;
  const value = json[valueKey];
  if (type === 0) {
    if (value !== undefined && value !== null) throw new JsonInputError(`${path}.${valueKey}`, `${typeKey} is NONE`);
    return [0, null];
  }
  const member = String(enumName(union, type));
  if (value === undefined) throw new JsonInputError(`${path}.${field.property}`, `missing (the ${member} itself)`);
  return [type, recordFromJson(member, value, `${path}.${valueKey}`)];
}

function valueFromJson(type: FieldType, json: unknown, path: string): unknown {
  switch (type.kind) {
    case 'scalar': return scalarFromJson(type.scalar, json, path);
    case 'string':
      if (json === null) return null;
      if (typeof json !== 'string') throw new JsonInputError(path, `expected a string, got ${describe(json)}`);
      return json;
    case 'enum': {
      const value = typeof json === 'string' || typeof json === 'number' ? enumValue(type.name, json) : null;
      if (value === null) {
        throw new JsonInputError(path, `expected a ${type.name} (${enumNames(type.name).join(', ')}), got ${describe(json)}`);
      }
      return value;
    }
    case 'table':
      if (json === null) return null;
      return recordFromJson(type.name, json, path);
    case 'union': throw new Error('a union is read by its table');
    case 'vector': return vectorFromJson(type, json, path);
  }
}

function vectorFromJson(type: Extract<FieldType, { kind: 'vector' }>, json: unknown, path: string): unknown[] {
  if (type.element.kind === 'scalar' && type.element.scalar === 'ubyte' && typeof json === 'string') {
    if (!/^([0-9a-fA-F]{2})*$/.test(json)) throw new JsonInputError(path, `expected hex bytes, got ${describe(json)}`);
    return [...Buffer.from(json, 'hex')];
  }
  if (!Array.isArray(json)) throw new JsonInputError(path, `expected a list, got ${describe(json)}`);
  return json.map((item, index) => valueFromJson(type.element, item, `${path}[${index}]`));
}

function scalarFromJson(scalar: Scalar, json: unknown, path: string): unknown {
  if (scalar === 'bool') {
    if (typeof json !== 'boolean') throw new JsonInputError(path, `expected true or false, got ${describe(json)}`);
    return json;
  }
  if (scalar === 'float' || scalar === 'double') {
    if (typeof json !== 'number' || !Number.isFinite(json)) throw new JsonInputError(path, `expected a number, got ${describe(json)}`);
    return json;
  }
  if (scalar === 'long' || scalar === 'ulong') return longFromJson(scalar, json, path);
  const [least, most] = integerRanges[scalar]!;
  if (typeof json !== 'number' || !Number.isInteger(json) || json < least || json > most) {
    throw new JsonInputError(path, `expected an integer from ${least} to ${most}, got ${describe(json)}`);
  }
  return json;
}

const longMin = -(2n ** 63n);
const longMax = 2n ** 63n - 1n;
const ulongMax = 2n ** 64n - 1n;

/** A 64-bit integer from a JSON integer (exact) or a decimal string. */
export function longFromJson(scalar: 'long' | 'ulong', json: unknown, path: string): bigint {
  let value: bigint | null = null;
  if (typeof json === 'number' && Number.isSafeInteger(json)) value = BigInt(json);
  else if (typeof json === 'string' && /^-?\d{1,20}$/.test(json)) value = BigInt(json);
  const least = scalar === 'long' ? longMin : 0n;
  const most = scalar === 'long' ? longMax : ulongMax;
  if (value === null || value < least || value > most) {
    throw new JsonInputError(path, `expected a ${scalar === 'long' ? '' : 'non-negative '}64-bit integer (a number up to 2^53, or a decimal string), got ${describe(json)}`);
  }
  return value;
}
