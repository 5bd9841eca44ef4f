import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  ImageError, chooseMirror, findDebianMirror, isMainArchiveSuite, parseDeb822Sources, parseOneLineSources, readAptSources,
} from '../../src/images/index.js';
import { tempDir } from './helpers.js';

// Example hosts use reserved documentation names (RFC 2606).
const ONE_LINE = `
# a comment
deb http://mirror.example.org/debian/ bookworm main contrib non-free-firmware
deb-src http://mirror.example.org/debian bookworm main
deb [arch=amd64,arm64 signed-by=/usr/share/keyrings/x.gpg] http://security.example.org/debian-security bookworm-security main
deb [ trusted=yes ] http://mirror.example.org/debian bookworm-updates main   # trailing comment
deb http://other.example.net/repo
`;

const DEB822 = `Types: deb deb-src
URIs: http://mirror.example.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

# a commented stanza separator
Types: deb
URIs: http://security.example.org/debian-security
Suites: bookworm-security
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 xyz
 -----END PGP PUBLIC KEY BLOCK-----

Enabled: no
Types: deb
URIs: http://disabled.example.org/debian
Suites: trixie
Components: main
`;

test('one-line sources: options, comments, types', () => {
  const s = parseOneLineSources(ONE_LINE, 'x.list');
  assert.equal(s.length, 4);
  assert.deepEqual(s[0], {
    type: 'deb', uris: ['http://mirror.example.org/debian'], suites: ['bookworm'],
    components: ['main', 'contrib', 'non-free-firmware'], options: {}, file: 'x.list',
  });
  assert.equal(s[1]!.type, 'deb-src');
  assert.deepEqual(s[2]!.options, { arch: 'amd64,arm64', 'signed-by': '/usr/share/keyrings/x.gpg' });
  assert.deepEqual(s[2]!.suites, ['bookworm-security']);
  assert.deepEqual(s[3]!.options, { trusted: 'yes' });
  assert.deepEqual(s[3]!.components, ['main']);
});

test('deb822 sources: stanzas, multi-line fields, Enabled: no', () => {
  const s = parseDeb822Sources(DEB822, 'debian.sources');
  assert.deepEqual(s.map((x) => x.type), ['deb', 'deb-src', 'deb']);
  assert.deepEqual(s[0]!.suites, ['bookworm', 'bookworm-updates']);
  assert.deepEqual(s[0]!.uris, ['http://mirror.example.org/debian']);
  assert.equal(s[0]!.options['signed-by'], '/usr/share/keyrings/debian-archive-keyring.gpg');
  assert.match(s[2]!.options['signed-by']!, /BEGIN PGP PUBLIC KEY BLOCK.*END PGP/);
  assert.ok(!s.some((x) => x.uris[0]!.includes('disabled')));
});

test('main-archive suites', () => {
  for (const s of ['bookworm', 'trixie', 'sid', 'stable', 'nodistro']) assert.ok(isMainArchiveSuite(s), s);
  for (const s of ['bookworm-security', 'bookworm-updates', 'bookworm-backports', 'bullseye/updates', 'bookworm-proposed-updates']) {
    assert.ok(!isMainArchiveSuite(s), s);
  }
});

test('the mirror is the first deb entry of a main-archive suite', () => {
  assert.deepEqual(chooseMirror(parseDeb822Sources(DEB822, 'f')), { uri: 'http://mirror.example.org/debian', origin: 'f' });
  // Security first, then the archive: the archive wins.
  const s = parseOneLineSources(
    'deb http://security.example.org/debian-security bookworm-security main\ndeb http://mirror.example.org/debian bookworm main\n',
    'g',
  );
  assert.equal(chooseMirror(s)?.uri, 'http://mirror.example.org/debian');
  // A third-party repository listed before Debian's archive is passed over.
  const t = parseOneLineSources('deb http://vendor.example.com/apt nodistro main\ndeb http://mirror.example.org/debian trixie main\n');
  assert.equal(chooseMirror(t)?.uri, 'http://mirror.example.org/debian');
  // ...but taken when it is all there is.
  assert.equal(chooseMirror(parseOneLineSources('deb http://vendor.example.com/apt nodistro main\n'))?.uri, 'http://vendor.example.com/apt');
  // deb-src and cdrom entries do not count.
  assert.equal(chooseMirror(parseOneLineSources('deb-src http://a.example/debian bookworm main\ndeb cdrom:[Debian]/ bookworm main\n')), undefined);
  assert.equal(chooseMirror([]), undefined);
});

test('reading an apt configuration directory (both formats, apt file-name rules)', (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  mkdirSync(join(dir, 'sources.list.d'));
  writeFileSync(join(dir, 'sources.list'), '# only comments\n');
  writeFileSync(join(dir, 'sources.list.d', 'a-vendor.list.disabled'), 'deb http://ignored.example/debian trixie main\n');
  writeFileSync(join(dir, 'sources.list.d', 'debian.sources'), DEB822);
  writeFileSync(join(dir, 'sources.list.d', 'zz.list'), 'deb http://later.example/debian bookworm main\n');
  const all = readAptSources(dir);
  assert.ok(!all.some((s) => s.uris[0]!.includes('ignored')));
  assert.equal(all.at(-1)!.uris[0], 'http://later.example/debian');
  assert.deepEqual(findDebianMirror({ env: {}, etcApt: dir }), {
    uri: 'http://mirror.example.org/debian',
    origin: join(dir, 'sources.list.d', 'debian.sources'),
  });
  // The sources.list file comes before sources.list.d.
  writeFileSync(join(dir, 'sources.list'), 'deb http://first.example/debian/ trixie main\n');
  assert.equal(findDebianMirror({ env: {}, etcApt: dir }).uri, 'http://first.example/debian');
});

test('TSVISOR_DEBIAN_MIRROR overrides; no source is a one-line ImageError', (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  assert.deepEqual(findDebianMirror({ env: { TSVISOR_DEBIAN_MIRROR: 'http://override.example/debian/' }, etcApt: dir }), {
    uri: 'http://override.example/debian',
    origin: 'TSVISOR_DEBIAN_MIRROR',
  });
  assert.throws(() => findDebianMirror({ env: { TSVISOR_DEBIAN_MIRROR: 'not a url' }, etcApt: dir }), ImageError);
  try {
    findDebianMirror({ env: {}, etcApt: dir });
    assert.fail('expected an error');
  } catch (e) {
    assert.ok(e instanceof ImageError);
    assert.ok(!e.message.includes('\n'));
    assert.match(e.message, /TSVISOR_DEBIAN_MIRROR/);
  }
});
