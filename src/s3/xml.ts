/**
 * Small, exact edits of S3 XML answers from the upstream. The proxy only swaps a few element values (sizes,
 * upload ids, ETags); editing the text in place keeps everything else byte for byte as the store sent it.
 */

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

export function xmlUnescape(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_m, e: string) => {
    if (e.startsWith('#x')) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith('#')) return String.fromCodePoint(parseInt(e.slice(1), 10));
    return ENTITIES[e]!;
  });
}

export function xmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&${Object.entries(ENTITIES).find(([, v]) => v === c)![0]};`);
}

/** The text of the first `<name>` element (unescaped), or undefined. */
export function elementText(xml: string, name: string): string | undefined {
  const m = new RegExp(`<${name}>([\\s\\S]*?)</${name}>`).exec(xml);
  return m ? xmlUnescape(m[1]!) : undefined;
}

/** Replaces the text of every `<name>` element with `fn(old)` (escaped in and out). */
export function replaceElements(xml: string, name: string, fn: (value: string) => string): string {
  return xml.replace(new RegExp(`<${name}>([\\s\\S]*?)</${name}>`, 'g'), (_m, v: string) => {
    return `<${name}>${xmlEscape(fn(xmlUnescape(v)))}</${name}>`;
  });
}

/** Applies `fn` to each `<name>…</name>` block (raw XML in, raw XML out). */
export function mapBlocks(xml: string, name: string, fn: (block: string) => string): string {
  return xml.replace(new RegExp(`<${name}>[\\s\\S]*?</${name}>`, 'g'), (block) => fn(block));
}

/** Removes every element whose name matches (e.g. plaintext checksums the upstream cannot check). */
export function removeElements(xml: string, namePattern: RegExp): string {
  return xml.replace(/<([A-Za-z0-9]+)>[^<]*<\/\1>/g, (m, n: string) => (namePattern.test(n) ? '' : m));
}
