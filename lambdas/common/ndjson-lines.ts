import { StringDecoder } from 'node:string_decoder';

/**
 * Splits a byte stream into lines, yielding them a chunk's worth at a time. Faster than readline's line-by-line
 * iteration, and memory stays bounded by one chunk plus one partial line.
 */
export async function* lineBatches(stream: AsyncIterable<Buffer>): AsyncGenerator<string[]> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  for await (const chunk of stream) {
    const text = rest + decoder.write(chunk);
    const lines = text.split('\n');
    rest = lines.pop() ?? '';
    if (lines.length > 0) yield lines;
  }
  rest += decoder.end();
  if (rest !== '') yield [rest];
}
