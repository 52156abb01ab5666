// A minimal ustar writer for the files berth puts into a container before it
// starts (configs and secrets): built in memory and sent with the Engine
// API's archive upload, so nothing is written to the host's disk and it works
// the same on a remote engine. Regular files only; Docker creates missing
// parent directories when it extracts.

export interface TarFile {
  /** absolute path in the container */
  path: string;
  content: Buffer;
  mode: number;
  uid: number;
  gid: number;
}

function header(name: string, prefix: string, f: TarFile): Buffer {
  const h = Buffer.alloc(512, 0);
  const put = (s: string, offset: number, len: number) => h.write(s, offset, Math.min(len, Buffer.byteLength(s)), 'utf8');
  const octal = (n: number, offset: number, len: number) => put(n.toString(8).padStart(len - 1, '0') + '\0', offset, len);
  put(name, 0, 100);
  octal(f.mode & 0o7777, 100, 8);
  octal(f.uid, 108, 8);
  octal(f.gid, 116, 8);
  octal(f.content.length, 124, 12);
  octal(0, 136, 12); // mtime: fixed, so the same files make the same archive
  put('        ', 148, 8); // checksum counted as spaces
  put('0', 156, 1); // regular file
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  put(prefix, 345, 155);
  let sum = 0;
  for (const b of h) sum += b;
  put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  return h;
}

/** Splits a path over ustar's name (100 bytes) and prefix (155 bytes) fields. */
function splitPath(path: string): [string, string] {
  const rel = path.replace(/^\/+/, '');
  if (Buffer.byteLength(rel) <= 100) return [rel, ''];
  for (let i = rel.indexOf('/'); i >= 0; i = rel.indexOf('/', i + 1)) {
    const prefix = rel.slice(0, i);
    const name = rel.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100) return [name, prefix];
  }
  throw new Error(`path too long for a tar entry: ${path}`);
}

export function tarOf(files: readonly TarFile[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    const [name, prefix] = splitPath(f.path);
    parts.push(header(name, prefix, f), f.content);
    const pad = (512 - (f.content.length % 512)) % 512;
    if (pad) parts.push(Buffer.alloc(pad, 0));
  }
  parts.push(Buffer.alloc(1024, 0));
  return Buffer.concat(parts);
}
