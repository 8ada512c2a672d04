#!/usr/bin/env node
// The `vmcp` command: builds dist/ first when a clone's sources are newer (saying so), then runs it.
import { buildIfStale } from './build.js'

if (!buildIfStale()) process.exit(1)
await import('../dist/src/cli/main.js')
