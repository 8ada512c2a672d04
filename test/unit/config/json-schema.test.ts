import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { buildConfigJsonSchema } from '../../../src/config/index.js'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const committed = JSON.parse(readFileSync(`${ROOT}vmcp.schema.json`, 'utf8')) as JsonSchema
const exampleText = readFileSync(`${ROOT}vmcp.example.yaml`, 'utf8')

interface JsonSchema {
  type?: string
  properties?: Record<string, JsonSchema>
  required?: string[]
  additionalProperties?: boolean | JsonSchema
  items?: JsonSchema
  oneOf?: JsonSchema[]
  anyOf?: JsonSchema[]
  enum?: unknown[]
  const?: unknown
  pattern?: string
  minimum?: number
  maximum?: number
}

/**
 * Just enough of JSON Schema to check the example the way an editor would: types, required and
 * unknown keys, enums, patterns, bounds. Returns the paths that fail; a validator dependency for
 * one test is not worth it, and the keywords zod emits here are few (see the keyword test below).
 */
function check(schema: JsonSchema, value: unknown, path = '$'): string[] {
  if (schema.oneOf || schema.anyOf) {
    const branches = (schema.oneOf ?? schema.anyOf) as JsonSchema[]
    const results = branches.map((b) => check(b, value, path))
    const passing = results.filter((r) => r.length === 0).length
    if (schema.oneOf ? passing === 1 : passing >= 1) return []
    return [`${path}: matches ${passing} of ${branches.length} branches`]
  }
  if (schema.const !== undefined && value !== schema.const) return [`${path}: not the constant`]
  if (schema.enum && !schema.enum.includes(value)) return [`${path}: not in enum`]
  switch (schema.type) {
    case 'object': {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        return [`${path}: not an object`]
      }
      const obj = value as Record<string, unknown>
      const errors: string[] = []
      for (const key of schema.required ?? []) {
        if (!(key in obj)) errors.push(`${path}.${key}: required`)
      }
      for (const [key, v] of Object.entries(obj)) {
        const sub = schema.properties?.[key]
        if (sub) errors.push(...check(sub, v, `${path}.${key}`))
        else if (schema.additionalProperties === false) errors.push(`${path}.${key}: unknown key`)
        else if (typeof schema.additionalProperties === 'object') {
          errors.push(...check(schema.additionalProperties, v, `${path}.${key}`))
        }
      }
      return errors
    }
    case 'array':
      if (!Array.isArray(value)) return [`${path}: not an array`]
      return value.flatMap((v, i) => (schema.items ? check(schema.items, v, `${path}[${i}]`) : []))
    case 'string':
      if (typeof value !== 'string') return [`${path}: not a string`]
      if (schema.pattern && !new RegExp(schema.pattern).test(value)) return [`${path}: pattern`]
      return []
    case 'integer':
    case 'number':
      if (typeof value !== 'number' || (schema.type === 'integer' && !Number.isInteger(value))) {
        return [`${path}: not ${schema.type === 'integer' ? 'an integer' : 'a number'}`]
      }
      if (schema.minimum !== undefined && value < schema.minimum) return [`${path}: below minimum`]
      if (schema.maximum !== undefined && value > schema.maximum) return [`${path}: above maximum`]
      return []
    case 'boolean':
      return typeof value === 'boolean' ? [] : [`${path}: not a boolean`]
    default:
      return []
  }
}

/** Every property name the schema defines, at any depth. */
function propertyNames(schema: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(schema)) schema.forEach((s) => propertyNames(s, out))
  else if (schema && typeof schema === 'object') {
    for (const [k, v] of Object.entries(schema)) {
      if (k === 'properties') {
        for (const [name, sub] of Object.entries(v as Record<string, unknown>)) {
          out.add(name)
          propertyNames(sub, out)
        }
      } else propertyNames(v, out)
    }
  }
  return out
}

describe('vmcp.schema.json', () => {
  it('is exactly what buildConfigJsonSchema() generates', () => {
    expect(
      committed,
      'vmcp.schema.json is stale (src/config/schema.ts changed): run `npm run schema`',
    ).toEqual(buildConfigJsonSchema())
  })

  it('uses only the keywords the structural check below understands', () => {
    // If zod starts emitting $ref or allOf, the walker must learn them before it can be trusted.
    const known = new Set(
      [
        '$schema $id title description default type properties required additionalProperties',
        'propertyNames items minItems oneOf anyOf enum const pattern minLength minimum maximum',
      ]
        .join(' ')
        .split(' '),
    )
    const used = new Set<string>()
    const walk = (n: unknown): void => {
      if (Array.isArray(n)) n.forEach(walk)
      else if (n && typeof n === 'object') {
        for (const [k, v] of Object.entries(n)) {
          used.add(k)
          if (k === 'properties') Object.values(v as object).forEach(walk)
          else walk(v)
        }
      }
    }
    walk(committed)
    expect([...used].filter((k) => !known.has(k))).toEqual([])
  })
})

describe('vmcp.example.yaml against the schema', () => {
  const example = parse(exampleText) as Record<string, unknown>

  it('points editors at the schema on its first line', () => {
    expect(exampleText.split('\n')[0]).toBe('# yaml-language-server: $schema=./vmcp.schema.json')
  })

  it('uses only top-level keys the schema defines', () => {
    const known = Object.keys(committed.properties ?? {})
    for (const key of Object.keys(example)) expect(known).toContain(key)
  })

  it('validates structurally: types, required and unknown keys at every depth', () => {
    expect(check(committed, example)).toEqual([])
  })

  it('the structural check does catch a misspelled nested key', () => {
    const broken = { ...example, server: { ...(example.server as object), prot: 1 } }
    expect(check(committed, broken)).toEqual(['$.server.prot: unknown key'])
  })

  it('documents every option, set or commented out', () => {
    // The example is the reference users read; an option added to the schema must show up here.
    const missing = [...propertyNames(committed)].filter((name) => {
      const key = name.replace(/\$/g, '\\$')
      return !new RegExp(`(^|[\\s{,])${key}:`, 'm').test(exampleText)
    })
    expect(missing).toEqual([])
  })
})
