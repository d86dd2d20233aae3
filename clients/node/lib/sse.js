// An incremental Server-Sent Events parser (the WHATWG event-stream format):
// feed it text as it arrives; it returns the events completed so far.

export class SSEParser {
  #buf = '';
  #event = '';
  #data = [];
  #id = undefined;
  #sawCR = false;
  /** retryMs is the last "retry:" field the server sent, if any. */
  retryMs = undefined;

  /**
   * push parses a chunk and returns the events it completed, each
   * {event, data, id} (id undefined when the event set none).
   */
  push(chunk) {
    let text = this.#buf + chunk;
    if (this.#sawCR && text.startsWith('\n')) text = text.slice(1);
    this.#sawCR = false;
    const out = [];
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.#line(text.slice(start, i), out);
      if (c === 13) {
        if (i + 1 < text.length) {
          if (text.charCodeAt(i + 1) === 10) i++;
        } else {
          this.#sawCR = true;
        }
      }
      start = i + 1;
    }
    this.#buf = text.slice(start);
    return out;
  }

  #line(line, out) {
    if (line === '') {
      if (this.#data.length > 0 || this.#event !== '') {
        out.push({ event: this.#event || 'message', data: this.#data.join('\n'), id: this.#id });
      }
      this.#event = '';
      this.#data = [];
      this.#id = undefined;
      return;
    }
    if (line.startsWith(':')) return; // a comment
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.#event = value;
        break;
      case 'data':
        this.#data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) this.#id = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
      default:
        break; // unknown fields are ignored
    }
  }
}
