// Plain JavaScript on purpose: it must run, and explain, on whatever Node the shell has.
const major = Number(process.versions.node.split('.')[0]);
if (major !== 24) {
  console.error(
    `afluente needs Node 24 LTS, but this is Node ${process.versions.node}.\n` +
      'Run it through npm (npm start, npm test, npm run demo): `npm ci` installs Node 24 into node_modules/.bin, ' +
      'and npm scripts put that first on PATH.',
  );
  process.exit(1);
}
