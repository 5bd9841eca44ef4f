/**
 * The OpenAPI 3.1 document of the REST API (`GET /openapi.json`), with its component
 * schemas generated from the zod schemas that validate the requests (schemas.ts).
 */
import { z } from 'zod';
import * as S from './schemas.js';

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });
const json = (schema: unknown, description: string) => ({ description, content: { 'application/json': { schema } } });
const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [String(c), { $ref: `#/components/responses/E${c}` }]));

const ERROR_TEXT: Record<number, string> = {
  400: 'invalid request (malformed JSON, a field out of range, an unknown field)',
  401: 'missing or wrong bearer token (TCP listener)',
  403: 'a web-console session or WebSocket from another origin',
  404: 'no such VM or route',
  409: 'conflict: duplicate name, wrong state, or admission control refused (not enough memory)',
  500: 'internal error',
  501: 'the VM process does not support the operation',
  503: 'the VM process does not answer',
};

const netParam = { name: 'name', in: 'path', required: true, schema: { type: 'string', pattern: '^[a-z][a-z0-9-]{0,30}$' } };
const nameParam = { name: 'name', in: 'path', required: true, schema: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' } };

function action(summary: string, extra: Record<string, unknown> = {}) {
  return {
    post: {
      summary, parameters: [nameParam], ...extra,
      responses: { 200: json(ref('Vm'), 'the VM after the operation'), ...errors(400, 401, 404, 409, 500, 503) },
    },
  };
}

let cached: Record<string, unknown> | undefined;

/** The OpenAPI 3.1 document (built once). */
export function openApiDocument(version = '0.1.0'): Record<string, unknown> {
  if (cached) return cached;
  // every schema with an `id` in its metadata becomes a component
  void S.VmCreateBody;
  const generated = z.toJSONSchema(z.globalRegistry, {
    target: 'draft-2020-12', io: 'input', unrepresentable: 'any',
    uri: (id) => `#/components/schemas/${id}`,
  }) as { schemas: Record<string, Record<string, unknown>> };
  const schemas: Record<string, unknown> = {};
  for (const [id, s] of Object.entries(generated.schemas)) {
    const { $schema: _s, $id: _i, ...rest } = s;
    schemas[id] = rest;
  }
  const responses = Object.fromEntries(Object.entries(ERROR_TEXT).map(([c, d]) => [`E${c}`, json(ref('Error'), d)]));
  cached = {
    openapi: '3.1.0',
    info: {
      title: 'tsvisor host API',
      version,
      description: 'Manage the VMs of one tsvisor host. On the Unix socket no credentials are needed (the socket is owner-only); '
        + 'on TCP every request carries `Authorization: Bearer <token>` (the token is in $TSVISOR_HOME/token). '
        + 'Errors are `{"error": {"code", "message"}}`. Sizes are bytes, times ms since the Unix epoch.',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    servers: [{ url: '/' }],
    security: [{}, { bearer: [] }],
    paths: {
      '/openapi.json': { get: { summary: 'this document', security: [{}], responses: { 200: { description: 'OpenAPI 3.1 document', content: { 'application/json': {} } } } } },
      '/v1/host': { get: { summary: 'host capacity, allocation, policy and warnings', responses: { 200: json(ref('Host'), 'host information'), ...errors(401) } } },
      '/v1/vms': {
        get: { summary: 'list VMs', responses: { 200: json({ type: 'object', properties: { vms: { type: 'array', items: ref('Vm') } }, required: ['vms'] }, 'all VMs'), ...errors(401) } },
        post: {
          summary: 'define a VM', requestBody: { required: true, content: { 'application/json': { schema: ref('VmCreate') } } },
          responses: { 201: json(ref('Vm'), 'the new VM (stopped)'), ...errors(400, 401, 409) },
        },
      },
      '/v1/vms/{name}': {
        get: { summary: 'one VM', parameters: [nameParam], responses: { 200: json(ref('Vm'), 'the VM'), ...errors(401, 404) } },
        patch: {
          summary: 'change a VM (CPU weight and cap apply at once)', parameters: [nameParam],
          requestBody: { required: true, content: { 'application/json': { schema: ref('VmPatch') } } },
          responses: { 200: json(ref('Vm'), 'the VM'), ...errors(400, 401, 404, 409) },
        },
        delete: {
          summary: 'delete a VM (usage totals are kept)',
          parameters: [nameParam, { name: 'force', in: 'query', required: false, schema: { type: 'boolean' }, description: 'kill it first if running' }],
          responses: { 200: json({ type: 'object', properties: { deleted: { type: 'string' } } }, 'deleted'), ...errors(401, 404, 409) },
        },
      },
      '/v1/vms/{name}/start': action('start: admission control, cgroup, VM process'),
      '/v1/vms/{name}/stop': action('graceful stop (guest power-off), forced after timeoutMs', { requestBody: { required: false, content: { 'application/json': { schema: ref('StopOptions') } } } }),
      '/v1/vms/{name}/kill': action('kill the VM process at once'),
      '/v1/vms/{name}/pause': action('pause all vCPUs'),
      '/v1/vms/{name}/resume': action('resume a paused VM'),
      '/v1/vms/{name}/restart': action('stop (graceful, then forced) and start', { requestBody: { required: false, content: { 'application/json': { schema: ref('StopOptions') } } } }),
      '/v1/vms/{name}/exec': {
        post: {
          summary: 'run a command in the guest (guest agent); output streamed as newline-delimited JSON',
          parameters: [nameParam], requestBody: { required: true, content: { 'application/json': { schema: ref('ExecRequest') } } },
          responses: {
            200: { description: 'ExecEvent objects, one per line, ending with {"exit": N}', content: { 'application/x-ndjson': { schema: ref('ExecEvent') } } },
            ...errors(400, 401, 404, 409, 501, 503),
          },
        },
      },
      '/v1/vms/{name}/send-key': {
        post: {
          summary: 'press keys together on the VM\'s keyboard, then release them (virsh send-key)',
          parameters: [nameParam],
          requestBody: { required: true, content: { 'application/json': { schema: ref('SendKey') } } },
          responses: { 200: json(ref('Vm'), 'the VM'), ...errors(400, 401, 404, 409, 503) },
        },
      },
      '/v1/vms/{name}/vnc': {
        get: {
          summary: 'the VM\'s VNC server (RFB 3.8 on loopback, no password), as virsh vncdisplay',
          description: 'With "Connection: Upgrade" and "Upgrade: websocket" (the web console), the request instead becomes a WebSocket carrying the VNC server\'s RFB stream as binary messages, as noVNC speaks it (101; 403 from another origin).',
          parameters: [nameParam],
          responses: {
            200: json({ type: 'object', required: ['vnc', 'viewers'], properties: { vnc: { type: 'string', description: 'host:port', example: '127.0.0.1:5900' }, viewers: { type: 'integer', description: 'viewers connected now' } } }, 'the VNC server'),
            ...errors(401, 404, 409, 503),
          },
        },
      },
      '/v1/vms/{name}/screenshot': {
        get: {
          summary: 'what the VM\'s display shows, as a PNG',
          parameters: [nameParam],
          responses: {
            200: json({ type: 'object', required: ['width', 'height', 'png'], properties: { width: { type: 'integer' }, height: { type: 'integer' }, png: { type: 'string', description: 'the PNG file, base64' } } }, 'the screen'),
            ...errors(401, 404, 409, 503),
          },
        },
      },
      '/v1/vms/{name}/shares': {
        post: {
          summary: 'share a host folder with a stopped VM (virtio-9p); the guest mounts it on /mnt/TAG from its next start',
          parameters: [nameParam],
          requestBody: { required: true, content: { 'application/json': { schema: ref('Share') } } },
          responses: { 200: json(ref('Vm'), 'the VM'), ...errors(400, 401, 404, 409) },
        },
      },
      '/v1/vms/{name}/shares/{tag}': {
        delete: {
          summary: 'stop sharing the folder tagged TAG with a stopped VM',
          parameters: [nameParam, { name: 'tag', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { 200: json(ref('Vm'), 'the VM'), ...errors(400, 401, 404, 409) },
        },
      },
      '/v1/vms/{name}/cdrom': {
        post: {
          summary: 'put a disc (ISO image) in the CD-ROM drive, taking out the one in it; a running guest is told; the definition keeps it',
          parameters: [nameParam],
          requestBody: { required: true, content: { 'application/json': { schema: ref('CdromInsert') } } },
          responses: { 200: json(ref('Vm'), 'the VM'), ...errors(400, 401, 404, 409) },
        },
        delete: {
          summary: 'eject the disc; refused while a running guest holds the tray locked (a mounted disc) unless force',
          parameters: [nameParam, { name: 'force', in: 'query', required: false, schema: { type: 'string', enum: ['1', 'true', 'yes'] }, description: 'eject even from a locked tray' }],
          responses: { 200: json(ref('Vm'), 'the VM'), ...errors(400, 401, 404, 409) },
        },
      },
      '/v1/vms/{name}/disks': {
        post: {
          summary: 'attach a disk image as the last disk; a running guest sees a new vdX at once (a spare virtio slot, bound by its agent); the definition keeps it',
          parameters: [nameParam],
          requestBody: { required: true, content: { 'application/json': { schema: ref('DiskAttach') } } },
          responses: {
            200: json({
              type: 'object', required: ['device', 'vm'],
              properties: { device: { type: ['string', 'null'], description: "the guest's name of the disk (vdc); null for a stopped VM" }, vm: ref('Vm') },
            }, 'the disk and the VM'),
            ...errors(400, 401, 404, 409),
          },
        },
      },
      '/v1/vms/{name}/disks/{disk}': {
        delete: {
          summary: 'detach a disk (not the CD-ROM); a running guest lets it go first, refused while mounted, swap or held there unless force; the image file is kept',
          parameters: [
            nameParam,
            { name: 'disk', in: 'path', required: true, schema: { type: 'string' }, description: 'vda, vdb, ... (attach order), an index, or the image path' },
            { name: 'force', in: 'query', required: false, schema: { type: 'string', enum: ['1', 'true', 'yes'] }, description: 'detach even while the guest uses it (it is synced first)' },
          ],
          responses: { 200: json(ref('Vm'), 'the VM'), ...errors(400, 401, 404, 409) },
        },
      },
      '/v1/vms/{name}/disks/{disk}/resize': {
        post: {
          summary: 'grow a disk (raw or qcow2); a running guest sees the new size at once (virtio-blk configuration change)',
          parameters: [nameParam, { name: 'disk', in: 'path', required: true, schema: { type: 'string' }, description: 'vda, vdb, ... (attach order), an index, or the image path' }],
          requestBody: { required: true, content: { 'application/json': { schema: ref('DiskResize') } } },
          responses: { 200: json(ref('Vm'), 'the VM'), ...errors(400, 401, 404, 409) },
        },
      },
      '/v1/vms/{name}/console': {
        get: {
          summary: 'the serial console: HTTP upgrade ("Upgrade: tsvisor-console"), then raw bytes both ways; the scrollback comes first',
          description: 'With "Upgrade: websocket" instead (the web console), the same bytes travel as binary WebSocket messages.',
          parameters: [nameParam, { name: 'Upgrade', in: 'header', required: true, schema: { type: 'string', enum: ['tsvisor-console', 'websocket'] } }],
          responses: { 101: { description: 'switching protocols' }, ...errors(401, 404, 409, 503) },
        },
      },
      '/v1/networks': {
        get: { summary: 'list virtual networks with their connected cards', responses: { 200: json({ type: 'object', properties: { networks: { type: 'array', items: ref('Network') } }, required: ['networks'] }, 'all networks'), ...errors(401) } },
        post: {
          summary: 'define a virtual network (a learning switch with DHCP and DNS)', requestBody: { required: true, content: { 'application/json': { schema: ref('NetworkCreate') } } },
          responses: { 201: json(ref('Network'), 'the new network'), ...errors(400, 401, 409) },
        },
      },
      '/v1/networks/{name}': {
        get: { summary: 'one network', parameters: [netParam], responses: { 200: json(ref('Network'), 'the network'), ...errors(401, 404) } },
        delete: { summary: 'delete a network no VM has a card on', parameters: [netParam], responses: { 200: json({ type: 'object', properties: { deleted: { type: 'string' } } }, 'deleted'), ...errors(401, 404, 409) } },
      },
      '/v1/usage': { get: { summary: 'metering: CPU-seconds, memory GiB-seconds, disk bytes per VM', responses: { 200: json(ref('Usage'), 'usage report'), ...errors(401) } } },
      '/v1/top': { get: { summary: 'live CPU %, memory and disk rates per VM', responses: { 200: json(ref('Top'), 'snapshot'), ...errors(401) } } },
      '/v1/daemon/web': {
        post: {
          summary: 'the web console: make sure the daemon listens on TCP (default 127.0.0.1:8006) and give its address (tsvisor web)',
          requestBody: { required: false, content: { 'application/json': { schema: ref('Web') } } },
          responses: { 200: json({ type: 'object', required: ['url'], properties: { url: { type: 'string', example: 'http://127.0.0.1:8006/' } } }, 'the web console\'s address'), ...errors(400, 401, 409) },
        },
      },
      '/v1/session': {
        post: {
          summary: 'the web console\'s login: checks the token and sets it as an HttpOnly, SameSite=Strict cookie; requests with the cookie must come from the daemon\'s own origin, and those that change something must carry "X-Tsvisor-Request: 1"',
          security: [],
          requestBody: { required: true, content: { 'application/json': { schema: ref('Session') } } },
          responses: { 204: { description: 'logged in (Set-Cookie)' }, ...errors(400, 401, 403) },
        },
        delete: { summary: 'log out: clears the cookie', security: [], responses: { 204: { description: 'logged out' } } },
      },
      '/v1/daemon/shutdown': { post: { summary: 'stop the daemon (VMs keep running and are re-adopted by the next daemon)', responses: { 202: { description: 'shutting down' }, ...errors(401) } } },
    },
    components: {
      schemas,
      responses,
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'TCP listener only: the token in $TSVISOR_HOME/token' } },
    },
  };
  return cached;
}
