// Gateway with a `custom` provider (oidc-provider's endpoints given explicitly, userinfo used).
import { gatewayScenario } from '../lib/scenario.mjs';

gatewayScenario('custom');
