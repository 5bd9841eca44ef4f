/**
 * Network settings (src/vmm/network.ts): `--publish` parsing, duplicate ports, MACs, the
 * `--network` words, and the port-in-use check.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import {
  NetworkConfigError, checkPortsFree, checkPublishList, defaultMac, formatPublish, networkDefinition, parsePublish,
} from '../../src/vmm/network.js';

test('--publish: docker -p forms, round trip through formatPublish', () => {
  assert.deepEqual(parsePublish('8080:80'), { hostPort: 8080, guestPort: 80, protocol: 'tcp' });
  assert.deepEqual(parsePublish('127.0.0.1:2222:22'), { hostIp: '127.0.0.1', hostPort: 2222, guestPort: 22, protocol: 'tcp' });
  assert.deepEqual(parsePublish('5353:53/udp'), { hostPort: 5353, guestPort: 53, protocol: 'udp' });
  assert.deepEqual(parsePublish('[::1]:8443:443/tcp'), { hostIp: '::1', hostPort: 8443, guestPort: 443, protocol: 'tcp' });
  for (const s of ['8080:80', '127.0.0.1:2222:22', '5353:53/udp', '[::1]:8443:443']) assert.equal(formatPublish(parsePublish(s)), s);
});

test('--publish: bad specs name what is wrong', () => {
  const bad: Array<[string, RegExp]> = [
    ['80', /expected \[HOST_IP:\]HOST_PORT:GUEST_PORT/],
    ['0:80', /host port "0"/],
    ['8080:70000', /guest port "70000"/],
    ['8080:80/sctp', /protocol "sctp"/],
    ['300.1.1.1:8080:80', /not an IP address/],
    ['a:b', /host port "a"/],
  ];
  for (const [spec, re] of bad) assert.throws(() => parsePublish(spec), (e: Error) => e instanceof NetworkConfigError && re.test(e.message), spec);
});

test('a host port published twice is refused (any address overlaps a specific one); tcp and udp are distinct', () => {
  assert.throws(() => checkPublishList(['8080:80', '8080:81'].map(parsePublish)), /8080\/tcp is published twice/);
  assert.throws(() => checkPublishList(['127.0.0.1:8080:80', '8080:81'].map(parsePublish)), /published twice/);
  assert.doesNotThrow(() => checkPublishList(['8080:80', '8080:80/udp', '127.0.0.1:9090:1', '127.0.0.2:9090:1'].map(parsePublish)));
});

test('MACs: stable per VM name and card, locally unique, unicast', () => {
  assert.equal(defaultMac('web', 0), defaultMac('web', 0));
  assert.notEqual(defaultMac('web', 0), defaultMac('web', 1));
  assert.notEqual(defaultMac('web', 0), defaultMac('db', 0));
  assert.match(defaultMac('web', 0), /^52:54:00(:[0-9a-f]{2}){3}$/);
});

test('--network words: user by default, virtual networks by name, none alone', () => {
  assert.deepEqual(networkDefinition('web', undefined, undefined).nics.map((n) => n.kind), ['user']);
  assert.deepEqual(networkDefinition('web', ['user', 'user'], ['80:80']).nics.length, 2);
  assert.deepEqual(networkDefinition('web', ['user', 'lan'], []).nics, [
    { kind: 'user', mac: defaultMac('web', 0) },
    { kind: 'network', network: 'lan', mac: defaultMac('web', 1) },
  ]);
  assert.deepEqual(networkDefinition('web', ['none'], []).nics, []);
  assert.throws(() => networkDefinition('web', ['none', 'user'], []), /cannot be combined/);
  assert.throws(() => networkDefinition('web', ['none'], ['80:80']), /needs a network card/);
  assert.throws(() => networkDefinition('web', ['lan', 'lan'], []), /one card on each virtual network/);
  assert.throws(() => networkDefinition('web', ['Bad_Name'], []), /unknown network "Bad_Name"/);
});

test('checkPortsFree: a port in use is named; a free one passes', async () => {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  try {
    await assert.rejects(checkPortsFree([parsePublish(`127.0.0.1:${port}:80`)]), new RegExp(`host port 127.0.0.1:${port}/tcp is already in use`));
    await assert.rejects(checkPortsFree([parsePublish(`${port}:80`)]), /already in use/);
  } finally {
    await new Promise((r) => srv.close(r));
  }
  await checkPortsFree([parsePublish(`127.0.0.1:${port}:80`), parsePublish(`127.0.0.1:${port}:80/udp`)]);
});
