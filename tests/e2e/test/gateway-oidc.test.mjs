// Gateway with an `oidc` provider (discovery from oidc-provider's issuer).
import { gatewayScenario } from '../lib/scenario.mjs';

gatewayScenario('oidc');
