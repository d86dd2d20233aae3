// UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, the version, a 12-bit
// counter (method 1 of section 6.2, so ids made in the same millisecond by
// this process still sort in creation order), the variant and 62 random bits.
import { randomFillSync } from 'node:crypto';

const pool = new Uint8Array(16 * 256);
let poolAt = pool.length;
let lastMs = -1;
let counter = 0;

function random16() {
  if (poolAt + 16 > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const b = pool.subarray(poolAt, poolAt + 16);
  poolAt += 16;
  return Uint8Array.from(b);
}

const hex = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/**
 * uuidv7 returns a new UUIDv7 string such as 0192e4a6-7b1c-7d3e-9f00-1a2b3c4d5e6f.
 * @param {number} [now] Unix milliseconds (default Date.now()).
 */
export function uuidv7(now = Date.now()) {
  const b = random16();
  let ms = Math.floor(now);
  if (ms > lastMs) {
    lastMs = ms;
    counter = ((b[6] & 0x07) << 8) | b[7]; // random start, leaving room to count up
  } else {
    ms = lastMs; // the clock stepped back or stood still: keep the order
    counter++;
    if (counter > 0xfff) {
      lastMs++; // borrow the next millisecond rather than repeat or reorder
      ms = lastMs;
      counter = 0;
    }
  }
  // 48-bit big-endian timestamp (2^48 ms is beyond the year 10000).
  const hi = Math.floor(ms / 2 ** 32);
  const lo = ms >>> 0;
  b[0] = (hi >>> 8) & 0xff;
  b[1] = hi & 0xff;
  b[2] = (lo >>> 24) & 0xff;
  b[3] = (lo >>> 16) & 0xff;
  b[4] = (lo >>> 8) & 0xff;
  b[5] = lo & 0xff;
  b[6] = 0x70 | ((counter >>> 8) & 0x0f);
  b[7] = counter & 0xff;
  b[8] = 0x80 | (b[8] & 0x3f);
  let s = '';
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) s += '-';
    s += hex[b[i]];
  }
  return s;
}

const v7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** isUUIDv7 reports whether s is a lower-case UUIDv7 string. */
export function isUUIDv7(s) {
  return typeof s === 'string' && v7.test(s);
}

/** uuidv7Time returns the Unix milliseconds a UUIDv7 carries. */
export function uuidv7Time(s) {
  const h = s.replace(/-/g, '').slice(0, 12);
  return parseInt(h, 16);
}
