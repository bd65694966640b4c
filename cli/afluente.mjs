#!/usr/bin/env node
// The `afluente` bin (package.json "bin"). Plain JavaScript on purpose: it must run, and explain, on whatever
// Node runs it. The CLI itself is TypeScript that Node 24 runs directly (type stripping), like the service.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  console.error(
    `afluente: the CLI needs Node 24, but this is Node ${process.versions.node} (${process.execPath}).\n` +
      'Run it as `npx afluente` from the project: npx puts node_modules/.bin, which holds Node 24, first on PATH.',
  );
  process.exit(1);
}
await import('./main.ts');
