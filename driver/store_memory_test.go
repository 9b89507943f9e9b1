package driver_test

import (
	"testing"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/driver/internal/storetest"
)

func TestMemoryStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) driver.Store { return driver.NewMemoryStore() })
}

func TestMemoryStoreZeroValue(t *testing.T) {
	storetest.Run(t, func(t *testing.T) driver.Store { return new(driver.MemoryStore) })
}
