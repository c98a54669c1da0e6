// The twin's API tier: a NestJS application in plain JavaScript (no build
// step), with @nestjs/terminus health checks against the twin's real
// PostgreSQL (TypeORM) and Redis (ioredis), TypeORM migrations recorded
// in its `migrations` table, the commit on /api/version and the platform's
// request metrics on /metrics. Configured by environment: PORT,
// DATABASE_URL, REDIS_URL, COMMIT, VERSION, API_DOCS (on|off).
'use strict';
require('reflect-metadata');
const { NestFactory } = require('@nestjs/core');
const { Module, Controller, Get, Head, Inject, Injectable, Res, Req } = require('@nestjs/common');
const { TerminusModule, HealthCheckService, HealthCheck, TypeOrmHealthIndicator, HealthIndicatorService } = require('@nestjs/terminus');
const { TypeOrmModule } = require('@nestjs/typeorm');
const Redis = require('ioredis');
const client = require('prom-client');

const env = (name, fallback) => process.env[name] ?? fallback;

// Decorators applied by hand: plain JavaScript has no decorator syntax.
const decorateClass = (decorators, target) => decorators.reduceRight((t, d) => d(t) || t, target);
const decorateMethod = (decorators, target, key) => {
  const descriptor = Object.getOwnPropertyDescriptor(target.prototype, key);
  for (const d of decorators.slice().reverse()) d(target.prototype, key, descriptor);
  Object.defineProperty(target.prototype, key, descriptor);
};
const injectParams = (target, tokens) => {
  tokens.forEach((token, i) => Inject(token)(target, undefined, i));
};
const paramDecorate = (decorator, target, key, index) => decorator(target.prototype, key, index);

// The release's schema: migrations as TypeORM records them (id, timestamp,
// name), one table the checklist's "Verify restore" counts.
class InitialSchema1735689600000 {
  constructor() { this.name = 'InitialSchema1735689600000'; }
  async up(runner) {
    await runner.query('CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL UNIQUE, created_at timestamptz NOT NULL DEFAULT now())');
    await runner.query("INSERT INTO users (email) VALUES ('first@broxiva.com')");
  }
  async down(runner) { await runner.query('DROP TABLE users'); }
}
// A later migration the twin adds at run time to make one pending.
const migrations = [InitialSchema1735689600000];

// Request metrics, as the platform exports them.
const registry = new client.Registry();
const requests = new client.Counter({
  name: 'broxiva_api_requests_total', help: 'HTTP requests answered by the API.',
  labelNames: ['method', 'route', 'status'], registers: [registry],
});
const duration = new client.Histogram({
  name: 'broxiva_api_request_duration_seconds', help: 'Time to answer an HTTP request.',
  labelNames: ['method', 'route'], buckets: [0.05, 0.1, 0.2, 0.5, 1, 2, 5], registers: [registry],
});

const redis = new Redis(env('REDIS_URL'), { lazyConnect: false, maxRetriesPerRequest: 1, enableOfflineQueue: false, retryStrategy: () => 500 });
redis.on('error', () => {});

class RedisIndicator {
  constructor(indicators) { this.indicators = indicators; }
  async isHealthy(key) {
    const session = this.indicators.check(key);
    try {
      const answer = await Promise.race([
        redis.ping(),
        new Promise((_, reject) => setTimeout(() => reject(new Error('timeout after 1000ms')), 1000)),
      ]);
      return answer === 'PONG' ? session.up() : session.down({ message: `PING answered ${answer}` });
    } catch (err) {
      return session.down({ message: err.message });
    }
  }
}
decorateClass([Injectable()], RedisIndicator);
injectParams(RedisIndicator, [HealthIndicatorService]);

class HealthController {
  constructor(health, db, cache) { this.health = health; this.db = db; this.cache = cache; }
  live() { return { status: 'ok' }; }
  ready() {
    return this.health.check([
      () => this.db.pingCheck('database', { timeout: 1000 }),
      () => this.cache.isHealthy('redis'),
    ]);
  }
}
decorateClass([Controller('api/health')], HealthController);
injectParams(HealthController, [HealthCheckService, TypeOrmHealthIndicator, RedisIndicator]);
decorateMethod([Get('live')], HealthController, 'live');
decorateMethod([Get('ready'), HealthCheck()], HealthController, 'ready');

class AppController {
  version() { return { version: env('VERSION', '1.0.0'), commit: env('COMMIT', 'unknown'), environment: 'production' }; }
  docs(res) {
    if (env('API_DOCS', 'off') === 'on') res.status(200).type('text/html').send('<html><body>Broxiva API</body></html>');
    else res.status(404).json({ statusCode: 404, message: 'Cannot GET /api/docs' });
  }
  async metrics(res) { res.type(registry.contentType).send(await registry.metrics()); }
}
decorateClass([Controller()], AppController);
decorateMethod([Get('api/version')], AppController, 'version');
decorateMethod([Get('api/docs')], AppController, 'docs');
paramDecorate(Res(), AppController, 'docs', 0);
decorateMethod([Get('metrics')], AppController, 'metrics');
paramDecorate(Res(), AppController, 'metrics', 0);

class AppModule {}
decorateClass([Module({
  imports: [
    TerminusModule,
    TypeOrmModule.forRoot({
      type: 'postgres', url: env('DATABASE_URL'), migrations, migrationsRun: true,
      migrationsTableName: 'migrations', synchronize: false, retryAttempts: 1000, retryDelay: 500,
      extra: { connectionTimeoutMillis: 2000 },
    }),
  ],
  controllers: [HealthController, AppController],
  providers: [RedisIndicator],
})], AppModule);

async function main() {
  const app = await NestFactory.create(AppModule, { logger: ['error', 'warn'] });
  app.use((req, res, next) => {
    // Health probes are not the API's traffic (a common choice): a
    // readiness 503 during an outage is not counted as an error answer.
    if (req.path.startsWith('/api/health')) {
      next();
      return;
    }
    const stop = duration.startTimer({ method: req.method, route: req.path });
    res.on('finish', () => {
      stop();
      requests.inc({ method: req.method, route: req.path, status: String(res.statusCode) });
    });
    next();
  });
  await app.listen(Number(env('PORT', '4000')), '127.0.0.1');
  console.log(`broxiva-api listening on ${env('PORT', '4000')}`);
}
main().catch((err) => { console.error(err); process.exit(1); });
