// Backup Operator for Keyguard on one Recovery Services vault, deployed into the vault's
// resource group: read protected items, recovery points and jobs, and trigger on-demand
// backups — without Backup Contributor's power to change policies or stop protection, and
// without being able to delete backup data.

@description('Resource id of the Recovery Services vault.')
param recoveryVaultId string

@description('Principal (object) id of Keyguard\'s identity.')
param keyguardPrincipalId string

// Backup Operator (azure-facts §5.7).
var backupOperator = '00c29273-979b-4161-815c-10b084fb9324'

resource recoveryVault 'Microsoft.RecoveryServices/vaults@2023-04-01' existing = {
  name: last(split(recoveryVaultId, '/'))
}

resource operator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(recoveryVault.id, keyguardPrincipalId, backupOperator)
  scope: recoveryVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', backupOperator)
    principalId: keyguardPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Keyguard: trigger on-demand backups and follow their jobs.'
  }
}
