import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { NotFoundError } from '../../errors.ts';
import { schemaOverview } from '../../schema/overview.ts';
import { AUTH_ERRORS, ErrorRef } from '../schemas/common.ts';
import { SourceSchemaQuery, SourceSchemaView } from '../schemas/schema-versions.ts';
import { sourceSchemaView } from '../views.ts';

const NameParams = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 64 }) },
  { additionalProperties: false },
);

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/sources/:name/schema',
    {
      schema: {
        tags: ['sources'],
        summary: "A source's schema versions, which one its config is, and the diff between two",
        description:
          "Each version is a table spec a load of the source handed the load step (the source's tables and " +
          'cursor column, identified by the sha256 of their canonical JSON), with when a load with it first and ' +
          'last committed and how many COMPLETED runs loaded it. `current` is the current config, whose version ' +
          'is null until a load starts with it. The diff goes from `from` to `to` (version ids of this source): ' +
          'by default from the latest loaded version to the current config, which is what the next load ' +
          'changes: tables added and removed, and per table columns added, removed and retyped and a changed ' +
          'key. An id that is not a version of this source is a 400.',
        params: NameParams,
        querystring: SourceSchemaQuery,
        response: { 200: SourceSchemaView, 400: ErrorRef, 404: ErrorRef, ...AUTH_ERRORS },
      },
    },
    async (request) => {
      const source = app.sources.sources.get(request.params.name);
      if (!source) throw new NotFoundError(`source "${request.params.name}" not found`);
      return sourceSchemaView(await schemaOverview(app.schemaVersions, source, request.query));
    },
  );
};

export default routes;
