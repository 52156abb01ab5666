// A minimal ustar writer for the files berth puts into a container before it
// starts (configs and secrets): built in memory and sent with the Engine
// API's archive upload, so nothing is written to the host's disk and it works
// the same on a remote engine. Regular files only; Docker creates missing
// parent directories when it extracts. A path too long for ustar's fields
// goes in a PAX header.

export interface TarFile {
  /** absolute path in the container */
  path: string;
  content: Buffer;
  mode: number;
  uid: number;
  gid: number;
}

function header(name: string, prefix: string, f: Pick<TarFile, 'mode' | 'uid' | 'gid'> & { size: number }, type = '0'): Buffer {
  const h = Buffer.alloc(512, 0);
  const put = (s: string, offset: number, len: number) => h.write(s, offset, Math.min(len, Buffer.byteLength(s)), 'utf8');
  const octal = (n: number, offset: number, len: number) => put(n.toString(8).padStart(len - 1, '0') + '\0', offset, len);
  put(name, 0, 100);
  octal(f.mode & 0o7777, 100, 8);
  octal(f.uid, 108, 8);
  octal(f.gid, 116, 8);
  octal(f.size, 124, 12);
  octal(0, 136, 12); // mtime: fixed, so the same files make the same archive
  put('        ', 148, 8); // checksum counted as spaces
  put(type, 156, 1); // '0' a regular file, 'x' a PAX header for the entry after it
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  put(prefix, 345, 155);
  let sum = 0;
  for (const b of h) sum += b;
  put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  return h;
}

/** Splits a path over ustar's name (100 bytes) and prefix (155 bytes) fields; undefined when it does not fit. */
function splitPath(rel: string): [string, string] | undefined {
  if (Buffer.byteLength(rel) <= 100) return [rel, ''];
  for (let i = rel.indexOf('/'); i >= 0; i = rel.indexOf('/', i + 1)) {
    const prefix = rel.slice(0, i);
    const name = rel.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100) return [name, prefix];
  }
  return undefined;
}

/** A PAX record `LEN path=…\n`, whose LEN counts its own digits. */
function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return Buffer.from(`${len}${body}`, 'utf8');
}

const padded = (b: Buffer) => {
  const pad = (512 - (b.length % 512)) % 512;
  return pad ? [b, Buffer.alloc(pad, 0)] : [b];
};

export function tarOf(files: readonly TarFile[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    const rel = f.path.replace(/^\/+/, '');
    let split = splitPath(rel);
    // A path ustar cannot hold (a name over 100 bytes): a PAX header gives it, as tar and Docker read it.
    if (!split) {
      const pax = paxRecord('path', rel);
      parts.push(header('PaxHeader', '', { mode: 0o644, uid: 0, gid: 0, size: pax.length }, 'x'), ...padded(pax));
      split = ['berth-long-name', '']; // what a reader without PAX would call it; Docker and tar take the PAX path
    }
    parts.push(header(split[0], split[1], { ...f, size: f.content.length }), ...padded(f.content));
  }
  parts.push(Buffer.alloc(1024, 0));
  return Buffer.concat(parts);
}

/**
 * The link text of the first entry of an archive the engine sent (GET
 * /containers/{id}/archive of a symlink): the ustar linkname field, or a PAX
 * header's `linkpath` when the text is too long for it. Undefined when the
 * entry is not a symbolic link.
 */
export function linkOfArchive(tar: Buffer): string | undefined {
  const field = (h: Buffer, offset: number, len: number) => {
    const raw = h.subarray(offset, offset + len);
    const end = raw.indexOf(0);
    return raw.subarray(0, end < 0 ? len : end).toString('utf8');
  };
  let paxLink: string | undefined;
  for (let at = 0; at + 512 <= tar.length; ) {
    const h = tar.subarray(at, at + 512);
    const type = field(h, 156, 1);
    const size = parseInt(field(h, 124, 12).trim() || '0', 8);
    const body = tar.subarray(at + 512, at + 512 + size);
    at += 512 + Math.ceil(size / 512) * 512;
    if (type === 'x') {
      // records `LEN key=value\n`
      for (const m of body.toString('utf8').matchAll(/\d+ ([^=]+)=([^\n]*)\n/g)) if (m[1] === 'linkpath') paxLink = m[2];
      continue;
    }
    if (type === 'K') {
      paxLink = field(body, 0, body.length);
      continue;
    }
    return type === '2' ? (paxLink ?? field(h, 157, 100)) : undefined;
  }
  return undefined;
}
