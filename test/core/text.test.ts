/** Text helpers: identifiers, text rules, and UTF-8 order without encoding. */
import test from 'ava';
import { compareUtf8, isIdentifier, isText, utf8 } from '../../core/text.js';

test('compareUtf8 agrees with Buffer.compare of the UTF-8 bytes', (t) => {
  const samples = ['', 'a', 'b', 'ab', 'a-b', 'Z', '\u00e9', '\u0800', '\ud7ff', '\ue000', '\uffff', '\ud83d\ude00',
    '\ud800\udc00', 'x\ud83d\ude00', 'x\uffff', 'role-000', 'role-001', 'role-0'];
  for (const a of samples) {
    for (const b of samples) {
      const expected = Math.sign(Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
      t.is(Math.sign(compareUtf8(a, b)), expected, `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
    }
  }
});

test('identifiers and text', (t) => {
  const bytes = (s: string) => Buffer.from(s, 'utf8');
  t.true(isIdentifier(bytes('www-data.prod_1')));
  t.false(isIdentifier(bytes('a b')));
  t.false(isIdentifier(bytes('')));
  t.false(isIdentifier(bytes('x'.repeat(129))));
  t.false(isIdentifier(bytes('caf\u00e9')));
  t.true(isText(bytes('host-1.example.com')));
  t.false(isText(bytes('a\nb')));
  t.false(isText(bytes('')));
  t.false(isText(bytes('x'.repeat(257))));
});

test('utf8 decodes ASCII, multi-byte, long and invalid input like TextDecoder', (t) => {
  const decoder = new TextDecoder();
  for (const sample of ['', 'host-1.example.com', 'caf\u00e9', '\ud83d\ude00 x', 'x'.repeat(65), 'y'.repeat(64)]) {
    t.is(utf8(Buffer.from(sample, 'utf8')), sample);
  }
  const invalid = Uint8Array.from([0x61, 0xff, 0x62]);
  t.is(utf8(invalid), decoder.decode(invalid));
});
