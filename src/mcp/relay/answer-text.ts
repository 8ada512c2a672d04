/**
 * A backend's answer as the client must see it, without serializing it again: the backend's own
 * JSON text with its closing `"id"` member, vmcp's id for the call, replaced by the client's id.
 * A large tool result then costs one parse (its structure is checked) and no second
 * serialization. `undefined` when the id does not close the text (another member order, spaces):
 * the caller serializes the parsed message instead.
 *
 * Precondition: `text` parsed as a JSON object whose `id` is `backendId`, and `backendId` holds
 * no `"` or `\`. Why the replaced member is the top-level id that parse read: in valid JSON the
 * `"` after `:` can be neither escaped (no backslash before it) nor the end of a string (the id
 * would then stand outside any string), so it opens the value; the key's `"` after `,` or `{`
 * likewise opens the key `id`; and the final `}` closes the top-level object. With duplicate
 * members JSON.parse keeps the last one (ECMA-262 §25.5.1), the one replaced here, and the client's
 * parser keeps the last one too.
 */
export function renameAnswerId(text: string, backendId: string, clientId: string | number): string | undefined {
  const tail = `"id":"${backendId}"}`
  if (!text.endsWith(tail)) return undefined
  const cut = text.length - tail.length
  const before = text.charCodeAt(cut - 1)
  if (before !== 0x2c && before !== 0x7b) return undefined // ',' or '{'
  return `${text.slice(0, cut)}"id":${JSON.stringify(clientId)}}`
}
