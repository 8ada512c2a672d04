import { z } from 'zod'
import { createConfigSchema } from './schema.js'

/** JSON Schema (draft 2020-12) of vmcp.yaml, generated from the zod schema so they never drift. */
export function buildConfigJsonSchema(): Record<string, unknown> {
  const schema = createConfigSchema({ baseDir: '.', env: {}, resolveSecrets: false })
  return {
    ...z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }),
    $id: 'https://github.com/vmcp/vmcp/vmcp.schema.json',
    title: 'vmcp configuration',
  }
}
