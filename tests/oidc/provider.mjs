// A real OpenID provider (panva/oidc-provider) for ruleauth's JWT tests.
//
// node provider.mjs --port N --issuer https://127.0.0.1:N --jwks keys.json --cert cert.pem --key key.pem
//
// keys.json is a *private* JWKS ({"keys": [...]}); the provider publishes the
// public halves at its jwks_uri. Tests rotate keys by stopping this process and
// starting it again on the same port with another file.
//
// Clients (client_credentials grant, JWT access tokens for the resource
// https://api.example.test):
//   rs-client / rs-secret  -> RS256 access tokens
//   es-client / es-secret  -> ES256 access tokens
//   opaque-client / opaque-secret -> opaque access tokens, for introspection
//   ruleauth-authorizer / authorizer-secret -> no grants: the authorizer's own
//     credentials at the introspection endpoint (client_secret_basic)
// Introspection (RFC 7662) is at /token/introspection, revocation (RFC 7009) at
// /token/revocation.
// Prints "READY <issuer>" on stdout once it is listening.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    issuer: { type: 'string' },
    jwks: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    audience: { type: 'string', default: 'https://api.example.test' },
  },
});

for (const name of ['port', 'issuer', 'jwks', 'cert', 'key']) {
  if (!args[name]) {
    process.stderr.write(`provider.mjs: missing --${name}\n`);
    process.exit(2);
  }
}

const AUDIENCE = args.audience;
const SCOPE = 'read:orders write:orders';
const algByClient = { 'rs-client': 'RS256', 'es-client': 'ES256' };

const configuration = {
  jwks: JSON.parse(readFileSync(args.jwks, 'utf8')),
  clients: [
    {
      client_id: 'rs-client',
      client_secret: 'rs-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_post',
      scope: SCOPE,
    },
    {
      client_id: 'es-client',
      client_secret: 'es-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_post',
      scope: SCOPE,
    },
    {
      client_id: 'opaque-client',
      client_secret: 'opaque-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_post',
      scope: SCOPE,
    },
    {
      client_id: 'ruleauth-authorizer',
      client_secret: 'authorizer-secret',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  scopes: ['openid', 'read:orders', 'write:orders'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Without an explicit `resource` parameter the token is still for our API,
      // so tests can use the plainest possible token request.
      defaultResource: () => AUDIENCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resourceIndicator, client) => {
        if (resourceIndicator !== AUDIENCE) {
          throw new Provider.errors.InvalidTarget();
        }
        return {
          scope: SCOPE,
          audience: AUDIENCE,
          accessTokenTTL: 600,
          accessTokenFormat: client.clientId === 'opaque-client' ? 'opaque' : 'jwt',
          jwt: { sign: { alg: algByClient[client.clientId] ?? 'RS256' } },
        };
      },
    },
  },
  enabledJWA: {
    idTokenSigningAlgValues: ['RS256', 'ES256'],
  },
};

const provider = new Provider(args.issuer, configuration);
// Silence the development-mode warnings; tests read stdout for READY only.
provider.on('server_error', (_ctx, err) => process.stderr.write(`server_error: ${err}\n`));

const server = createServer(
  { cert: readFileSync(args.cert), key: readFileSync(args.key) },
  provider.callback(),
);
server.listen(Number(args.port), '127.0.0.1', () => {
  process.stdout.write(`READY ${args.issuer}\n`);
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
