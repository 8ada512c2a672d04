import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { startDatadogLike, type DatadogLike } from '../../../fixtures/datadog-like/datadog-like.mjs'
import { createMemoryDcrStore, createRedisDcrStore } from '../../../src/dcr/index.js'
import { startRedis, type RedisServer } from '../../support/redis.js'
import { memoryLogger } from '../../support/vmcp.js'
import { harness, spec } from './support.js'

const WAIT = { timeout: 15_000 }

describe('RFC 7592 renewal while running and across replicas', () => {
  let dd: DatadogLike
  let redis: RedisServer
  beforeAll(async () => {
    dd = await startDatadogLike({ secretTtl: 3600 })
    redis = await startRedis()
  })
  afterAll(async () => {
    await dd?.close()
    await redis?.close()
  })

  it('a timer renews a secret that reaches its window while vmcp runs', async () => {
    dd.state.secretTtl = 4 // shorter than renewBefore: renewed at half its remaining life
    try {
      const h = harness([spec('datadog', { discoveryUrl: dd.issuer })], {
        store: createMemoryDcrStore(),
      })
      const before = dd.counts.renewals
      h.manager.start()
      await vi.waitFor(
        () => expect(h.manager.upstream('datadog')?.status().state).toBe('ready'),
        WAIT,
      )
      const first = h.manager.upstream('datadog')?.client().clientSecret
      await vi.waitFor(() => expect(dd.counts.renewals).toBeGreaterThan(before), WAIT)
      await vi.waitFor(
        () => expect(h.manager.upstream('datadog')?.client().clientSecret).not.toBe(first),
        WAIT,
      )
      expect(h.lines(/client secret renewed/).length).toBeGreaterThanOrEqual(1)
      await h.manager.close()
    } finally {
      dd.state.secretTtl = 3600
    }
  })

  it('two replicas on one Redis due for renewal at the same time: exactly one RFC 7592 request, both adopt it', async () => {
    const store = () =>
      createRedisDcrStore({
        url: redis.url,
        keyPrefix: 'r:',
        key: Buffer.alloc(32, 5),
        logger: memoryLogger().logger,
      })
    const seed = harness([spec('datadog', { discoveryUrl: dd.issuer })], { store: store() })
    seed.manager.start()
    await vi.waitFor(
      () => expect(seed.manager.upstream('datadog')?.status().state).toBe('ready'),
      WAIT,
    )
    await seed.manager.close()

    const before = dd.counts.renewals
    const replicas = [1, 2].map(() =>
      harness([spec('datadog', { discoveryUrl: dd.issuer, renewBefore: 2 * 3600_000 })], {
        store: store(),
        retryMs: 50,
      }),
    )
    for (const r of replicas) r.manager.start()
    await vi.waitFor(() => {
      const secrets = replicas.map((r) => r.manager.upstream('datadog')?.client().clientSecret)
      expect(dd.counts.renewals).toBe(before + 1)
      expect(secrets[0]).toBe(secrets[1])
      expect(replicas.flatMap((r) => r.lines(/client secret renewed/))).toHaveLength(1)
      expect(
        replicas.flatMap((r) =>
          r.records().filter((x) => x.msg === 'dcr adopted a renewal made by another replica'),
        ),
      ).toHaveLength(1)
    }, WAIT)
    expect(dd.counts.renewals).toBe(before + 1)
    for (const r of replicas) await r.manager.close()
  })
})
