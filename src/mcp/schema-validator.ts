import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv-provider.js'

/**
 * One JSON Schema validator for every session server and backend client: otherwise the SDK builds
 * an Ajv instance per Server/Client, about 18 KB of each idle session's memory.
 */
export const SHARED_SCHEMA_VALIDATOR = new AjvJsonSchemaValidator()
