import preact from '@preact/preset-vite';
import { defineConfig } from 'vite';

// The web app, built by `npm run build` (`vite build ui`: this folder is Vite's root) into ui/dist, which the
// service serves at /ui/. `npm run ui:dev` serves it with hot reload and forwards the API's paths to a service
// on :8080 (AFLUENTE_UI_API to point elsewhere), so the app calls the same origin either way.
const api = process.env.AFLUENTE_UI_API ?? 'http://127.0.0.1:8080';

export default defineConfig({
  base: '/ui/',
  plugins: [preact()],
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', sourcemap: false },
  server: {
    proxy: Object.fromEntries(['/runs', '/sources', '/backfills', '/health'].map((path) => [path, api])),
  },
});
