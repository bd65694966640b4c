// The CDK app's entry point (cdk.json's "app"): `npm run synth` and `npx cdk deploy` run it through the CDK CLI,
// which hands it cdk.json's context, the `-c` overrides and the output folder. Node runs the TypeScript directly.
import { App } from 'aws-cdk-lib';
import { addAfluenteStack } from './afluente-app.ts';

const app = new App();
addAfluenteStack(app);
app.synth();
