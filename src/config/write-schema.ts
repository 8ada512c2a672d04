import { writeFileSync } from 'node:fs'
import { buildConfigJsonSchema } from './json-schema.js'

// `npm run schema`: regenerates vmcp.schema.json at the repository root.
writeFileSync('vmcp.schema.json', JSON.stringify(buildConfigJsonSchema(), null, 2) + '\n')
